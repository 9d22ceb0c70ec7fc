/**
 * The notebook's status line: connection (with unsent edits), saving, the
 * marimo kernel, and what this user may do. Each part carries a data-*
 * attribute with its machine-readable state (see README, "Test hooks").
 */
import { Widget } from '@lumino/widgets';

import { ConnectionStatus } from './connection';
import { Role } from './protocol';

export type SaveStatus = 'saved' | 'modified' | 'saving' | 'failed';

export interface NotebookStatus {
  connection: ConnectionStatus;
  /** Local edits not yet confirmed by the server, over all cells. */
  unsent: number;
  save: SaveStatus;
  /** Why a save failed, or when the last one happened. */
  saveDetail: string;
  kernel: string;
  kernelDetail: string;
  role: Role | null;
  /** Something the user must know (cannot open, an edit refused); empty when fine. */
  problem: string;
}

const CONNECTION_LABELS: Record<ConnectionStatus, string> = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline'
};

const SAVE_LABELS: Record<SaveStatus, string> = {
  saved: 'Saved',
  modified: 'Edited',
  saving: 'Saving…',
  failed: 'Save failed'
};

const ROLE_LABELS: Record<Role, string> = {
  viewer: 'Viewer (read only)',
  editor: 'Editor',
  runner: 'Editor · can run'
};

export class StatusLine extends Widget {
  constructor() {
    super();
    this.addClass('jp-MarimoCollab-status');
    this._connection = this._part('connection');
    this._save = this._part('save');
    this._kernel = this._part('kernel');
    this._role = this._part('role');
  }

  render(status: NotebookStatus): void {
    const unsent =
      status.unsent > 0
        ? ` · ${status.unsent} unsent edit${status.unsent === 1 ? '' : 's'}`
        : '';
    this._set(
      this._connection,
      { connectionStatus: status.connection, unsentEdits: String(status.unsent) },
      CONNECTION_LABELS[status.connection] + unsent,
      status.connection === 'connected'
        ? 'Live with the server'
        : 'Your edits are kept and sent when the connection returns'
    );
    this._set(
      this._save,
      { saveStatus: status.save },
      SAVE_LABELS[status.save],
      status.saveDetail
    );
    this._set(
      this._kernel,
      { kernelStatus: status.kernel },
      `Kernel: ${status.kernel}`,
      status.kernelDetail
    );
    this._set(
      this._role,
      { role: status.role ?? 'unknown' },
      status.role ? ROLE_LABELS[status.role] : '',
      'What you may do in this notebook'
    );
  }

  private _part(name: string): HTMLElement {
    const span = document.createElement('span');
    span.className = `jp-MarimoCollab-status-${name}`;
    this.node.appendChild(span);
    return span;
  }

  private _set(
    node: HTMLElement,
    data: Record<string, string>,
    text: string,
    title: string
  ): void {
    Object.assign(node.dataset, data);
    node.textContent = text;
    node.title = title;
  }

  private _connection: HTMLElement;
  private _save: HTMLElement;
  private _kernel: HTMLElement;
  private _role: HTMLElement;
}
