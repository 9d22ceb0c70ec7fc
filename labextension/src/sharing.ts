/**
 * Share: under JupyterHub 5+, grant a named user access to this server via
 * the hub's sharing API. The request authenticates with this page's own
 * OAuth token in a header; no link carrying a token is ever built.
 */
import { Dialog, InputDialog, showDialog } from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { Widget } from '@lumino/widgets';

/** What an admin must configure for the Share button to work. */
export const ADMIN_HELP =
  'Ask your JupyterHub admin (JupyterHub 5 or newer) to enable sharing:\n' +
  '  c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "shares!user", "read:users:name"]}]\n' +
  'and to let this server\'s browser token manage its shares (and look up names):\n' +
  '  c.Spawner.oauth_client_allowed_scopes = ["access:servers!server", "shares!server", "read:users:name"]';

interface HubInfo {
  sharesUrl: string;
  owner: string;
  token: string;
}

/** The hub's shares endpoint for this server, or null outside JupyterHub. */
export function hubInfo(): HubInfo | null {
  const prefix = PageConfig.getOption('hubPrefix');
  const owner =
    PageConfig.getOption('hubServerUser') || PageConfig.getOption('hubUser');
  if (!prefix || !owner) {
    return null;
  }
  const origin = PageConfig.getOption('hubHost') || window.location.origin;
  const server = PageConfig.getOption('hubServerName');
  const sharesUrl = URLExt.join(
    origin,
    prefix,
    'api/shares',
    encodeURIComponent(owner),
    // the default server's name is empty: the URL then ends with "/"
    server ? encodeURIComponent(server) : ''
  );
  return {
    sharesUrl: server ? sharesUrl : `${sharesUrl}/`,
    owner,
    token: PageConfig.getToken()
  };
}

async function explain(title: string, message: string): Promise<void> {
  const body = document.createElement('pre');
  body.className = 'jp-MarimoCollab-shareHelp';
  body.textContent = message;
  const widget = new Widget({ node: body });
  await showDialog({ title, body: widget, buttons: [Dialog.okButton()] });
}

/** Ask for a user name and grant them access to this server. */
export async function shareWithUser(notebookPath: string): Promise<void> {
  const hub = hubInfo();
  if (!hub) {
    await explain(
      'Sharing needs JupyterHub',
      'This Jupyter server does not run under JupyterHub, so there is no ' +
        'sharing service. Collaborators need their own access to this server ' +
        '(for example a JupyterHub share or an account the admin grants).'
    );
    return;
  }
  const answer = await InputDialog.getText({
    title: 'Share this notebook',
    label: `JupyterHub user to give access to ${hub.owner}'s server:`,
    placeholder: 'user name',
    okLabel: 'Share'
  });
  const user = answer.value?.trim();
  if (!answer.button.accept || !user) {
    return;
  }
  let response: Response;
  try {
    response = await fetch(hub.sharesUrl, {
      method: 'POST',
      headers: {
        Authorization: `token ${hub.token}`,
        'Content-Type': 'application/json'
      },
      body: JSON.stringify({ user })
    });
  } catch (error) {
    await explain('Sharing failed', `Could not reach JupyterHub: ${error}`);
    return;
  }
  if (response.ok) {
    // A plain address: whoever opens it signs in to the hub as themselves.
    const url = URLExt.join(
      PageConfig.getBaseUrl(), // absolute: origin and the server's prefix
      'lab/tree',
      URLExt.encodeParts(notebookPath)
    );
    await explain(
      'Shared',
      `${user} can now open this notebook at\n  ${url}\n` +
        'What they may do there (view, edit, run) follows the server\'s permissions.'
    );
    return;
  }
  let detail = '';
  try {
    detail = ((await response.json()) as { message?: string }).message ?? '';
  } catch {
    // no JSON body
  }
  if (response.status === 403) {
    await explain(
      'Sharing is not enabled for you',
      `JupyterHub refused (403${detail ? `: ${detail}` : ''}).\n\n${ADMIN_HELP}`
    );
  } else if (response.status === 404) {
    await explain(
      'Sharing failed',
      `JupyterHub does not know that user, or this hub has no sharing API ` +
        `(404${detail ? `: ${detail}` : ''}). Sharing needs JupyterHub 5 or newer ` +
        `and permission to look up user names.\n\n${ADMIN_HELP}`
    );
  } else {
    await explain(
      'Sharing failed',
      `JupyterHub answered ${response.status}${detail ? `: ${detail}` : ''}.`
    );
  }
}
