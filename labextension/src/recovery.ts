/**
 * When the server lost the session's history (a new epoch), edits it never
 * confirmed cannot be replayed. They are never dropped silently: the user
 * sees each cell's text as they had it and can copy it back.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

export interface UnsentText {
  /** The cell's name, or its position when unnamed. */
  label: string;
  text: string;
  unsent: number;
}

function entry(item: UnsentText): HTMLElement {
  const section = document.createElement('section');
  section.className = 'jp-MarimoCollab-recoveredCell';
  const heading = document.createElement('h3');
  heading.textContent = `${item.label} — ${item.unsent} unsent edit${item.unsent === 1 ? '' : 's'}`;
  const text = document.createElement('textarea');
  text.readOnly = true;
  text.value = item.text;
  text.rows = Math.min(12, item.text.split('\n').length + 1);
  const copy = document.createElement('button');
  copy.className = 'jp-mod-styled jp-mod-accept';
  copy.textContent = 'Copy';
  copy.onclick = () => {
    void navigator.clipboard.writeText(item.text).then(
      () => (copy.textContent = 'Copied'),
      () => {
        text.select(); // clipboard refused: leave it selected for Ctrl+C
      }
    );
  };
  section.append(heading, text, copy);
  return section;
}

/** Show the text of cells whose edits the server never confirmed. */
export async function offerUnsentText(items: UnsentText[]): Promise<void> {
  if (!items.length) {
    return;
  }
  console.warn('marimo-collab: unsent edits after a session reset', items);
  const body = new Widget();
  body.addClass('jp-MarimoCollab-recovery');
  const intro = document.createElement('p');
  intro.textContent =
    'The server restarted this notebook from its file, so these edits of yours ' +
    'could not be applied. Here is each cell as you had it: copy what you need.';
  body.node.append(intro, ...items.map(entry));
  await showDialog({
    title: 'Your unsent edits',
    body,
    buttons: [Dialog.okButton({ label: 'Done' })]
  });
}
