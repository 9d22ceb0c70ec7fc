/**
 * One cell's editor: a raw CodeMirror 6 view with its own @codemirror/collab
 * state, pushing local edits to the cell's authority on the server and
 * applying the pushes the server broadcasts (docs/protocol.md, "Editing a cell").
 *
 * Why not JupyterLab's editor: it is bound to a Yjs model whose undo stack
 * would record remote edits and whose save would write a stale client copy.
 */
import {
  collab,
  getSyncedVersion,
  receiveUpdates,
  sendableUpdates
} from '@codemirror/collab';
import {
  defaultKeymap,
  history,
  historyKeymap,
  indentWithTab
} from '@codemirror/commands';
import { bracketMatching, indentOnInput, indentUnit } from '@codemirror/language';
import {
  ChangeSet,
  Compartment,
  EditorState,
  Extension,
  Prec,
  Transaction
} from '@codemirror/state';
import {
  drawSelection,
  EditorView,
  highlightSpecialChars,
  keymap,
  lineNumbers,
  ViewUpdate
} from '@codemirror/view';

import { ProtocolError, PushEntry, WireUpdate } from './protocol';

/** What a cell editor needs from the notebook around it. */
export interface CellHost {
  /** Send one `change` request; resolves on `ok`, rejects with ProtocolError. */
  push(cellId: string, version: number, updates: WireUpdate[]): Promise<void>;
  /** `pull` the pushes accepted since `version`. */
  pull(cellId: string, version: number): Promise<PushEntry[]>;
  /** History is gone on the server: re-join the room. */
  resync(reason: string): void;
  /** Whether requests can be sent right now. */
  readonly connected: boolean;
  /** Unsent edit counts or the selection changed. */
  localActivity(cell: CellEditor, docChanged: boolean): void;
  /** Keyboard actions that reach beyond one cell. */
  runAndAdvance(cell: CellEditor): void;
  save(): void;
  focusNeighbour(cell: CellEditor, direction: -1 | 1, at: 'start' | 'end'): boolean;
  leave(cell: CellEditor): void;
  /** A push was refused for a reason retrying cannot fix. */
  pushFailed(cell: CellEditor, error: ProtocolError): void;
}

export interface CellEditorOptions {
  cellId: string;
  code: string;
  version: number;
  editable: boolean;
  host: CellHost;
  /** JupyterLab's editor theme and the Python language, so it looks native. */
  theme: Extension;
  language: Extension;
  /** Remote cursors and anything else the notebook layers on. */
  extra: Extension;
}

/** Retries after a refusal that may be temporary (rate_limited, internal). */
const RETRY_AFTER_MS = 1000;

export class CellEditor {
  /** Fresh per editor session and never reused: a reused id diverges peers. */
  readonly clientID: string = crypto.randomUUID();
  readonly cellId: string;
  readonly view: EditorView;

  constructor(options: CellEditorOptions) {
    this.cellId = options.cellId;
    this._host = options.host;
    const state = EditorState.create({
      doc: options.code,
      extensions: [
        collab({ startVersion: options.version, clientID: this.clientID }),
        history(),
        Prec.high(keymap.of(this._notebookKeys())),
        keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
        lineNumbers(),
        highlightSpecialChars(),
        drawSelection(),
        indentOnInput(),
        bracketMatching(),
        indentUnit.of('    '),
        this._editable.of(editability(options.editable)),
        options.theme,
        options.language,
        options.extra,
        EditorView.updateListener.of(update => this._onUpdate(update))
      ]
    });
    this.view = new EditorView({ state });
  }

  get text(): string {
    return this.view.state.doc.toString();
  }

  /** The server version this editor has caught up to. */
  get syncedVersion(): number {
    return getSyncedVersion(this.view.state);
  }

  /** Local edits the server has not confirmed yet. */
  get unsentCount(): number {
    return sendableUpdates(this.view.state).length;
  }

  /**
   * A position in this editor's text as the server's document at the synced
   * version has it (cursors travel in that coordinate; docs/protocol.md,
   * "Presence"): our unconfirmed edits are undone for the mapping.
   */
  toSynced(pos: number): number {
    const pending = this._pendingChanges();
    return pending ? pending.invertedDesc.mapPos(pos) : pos;
  }

  /** The inverse: a position at server `version` in our text (approximate when versions differ). */
  fromSynced(pos: number, version: number): number {
    const pending = this._pendingChanges();
    if (!pending || version !== this.syncedVersion) {
      return pos;
    }
    return pending.mapPos(Math.min(pos, pending.length));
  }

  private _pendingChanges(): ChangeSet | null {
    const updates = sendableUpdates(this.view.state);
    if (!updates.length) {
      return null;
    }
    return updates
      .map(update => update.changes)
      .reduce((all, changes) => all.compose(changes));
  }

  get editable(): boolean {
    return !this.view.state.readOnly;
  }

  setEditable(editable: boolean): void {
    this.view.dispatch({
      effects: this._editable.reconfigure(editability(editable))
    });
  }

  /**
   * Apply one accepted push: exactly one receiveUpdates call per push, so the
   * grouping matches the server's per-push rebase. Pushes already applied are
   * skipped; a gap triggers a pull.
   */
  receive(entry: PushEntry): void {
    const synced = this.syncedVersion;
    if (entry.version < synced) {
      return; // already applied (join catch-up and a broadcast can overlap)
    }
    if (entry.version > synced) {
      void this.catchUp();
      return;
    }
    const updates = entry.updates.map(update => ({
      clientID: update.clientID,
      changes: ChangeSet.fromJSON(update.changes)
    }));
    this.view.dispatch(receiveUpdates(this.view.state, updates));
    this._host.localActivity(this, true);
  }

  /** Fetch and apply what this cell missed. */
  async catchUp(): Promise<void> {
    if (this._catchingUp || !this._host.connected) {
      return;
    }
    this._catchingUp = true;
    try {
      const entries = await this._host.pull(this.cellId, this.syncedVersion);
      for (const entry of entries) {
        this.receive(entry);
      }
    } catch (error) {
      if (error instanceof ProtocolError && error.code === 'stale') {
        this._host.resync(`cell ${this.cellId}: history gone`);
      }
    } finally {
      this._catchingUp = false;
    }
    this.flush();
  }

  /**
   * Push unconfirmed edits, one push in flight per cell, with the synced
   * version read at the same moment as the updates.
   */
  flush(): void {
    if (this._inFlight || this._destroyed || !this._host.connected) {
      return;
    }
    const state = this.view.state;
    const updates = sendableUpdates(state);
    if (!updates.length || state.readOnly) {
      return;
    }
    const version = getSyncedVersion(state);
    const wire = updates.map(update => ({
      clientID: update.clientID,
      changes: update.changes.toJSON()
    }));
    this._inFlight = true;
    this._host.push(this.cellId, version, wire).then(
      () => {
        this._inFlight = false;
        this.flush(); // edits typed while the push was in flight
      },
      (error: unknown) => {
        this._inFlight = false;
        this._onPushRefused(error);
      }
    );
  }

  focus(at: 'start' | 'end' | 'keep' = 'keep'): void {
    if (at !== 'keep') {
      const pos = at === 'start' ? 0 : this.view.state.doc.length;
      this.view.dispatch({ selection: { anchor: pos }, scrollIntoView: true });
    }
    this.view.focus();
  }

  destroy(): void {
    this._destroyed = true;
    this.view.destroy();
  }

  private _onPushRefused(error: unknown): void {
    if (this._destroyed || !(error instanceof ProtocolError)) {
      return;
    }
    switch (error.code) {
      case 'disconnected':
        return; // the re-join pushes again
      case 'stale':
        if (error.gone) {
          this._host.resync(`cell ${this.cellId}: push too old`);
        } else {
          void this.catchUp(); // catchUp flushes afterwards
        }
        return;
      case 'rate_limited':
      case 'internal':
        window.setTimeout(() => this.flush(), RETRY_AFTER_MS);
        return;
      default:
        // forbidden, invalid_change, too_large, unknown_cell: retrying the same
        // push cannot succeed; the notebook tells the user and keeps the text.
        this._host.pushFailed(this, error);
    }
  }

  private _onUpdate(update: ViewUpdate): void {
    const local =
      update.docChanged &&
      // receiveUpdates marks its transactions as remote
      !update.transactions.some(tr => tr.annotation(Transaction.remote));
    if (local) {
      this.flush();
    }
    if (update.docChanged || update.selectionSet) {
      this._host.localActivity(this, update.docChanged);
    }
  }

  /** Keys that act on the notebook rather than the text. */
  private _notebookKeys() {
    const host = this._host;
    const atFirstLine = (view: EditorView) => {
      const sel = view.state.selection.main;
      return sel.empty && view.state.doc.lineAt(sel.head).number === 1;
    };
    const atLastLine = (view: EditorView) => {
      const sel = view.state.selection.main;
      return (
        sel.empty &&
        view.state.doc.lineAt(sel.head).number === view.state.doc.lines
      );
    };
    return [
      {
        key: 'Shift-Enter',
        run: () => {
          host.runAndAdvance(this);
          return true;
        }
      },
      {
        key: 'Mod-s',
        run: () => {
          host.save();
          return true;
        }
      },
      {
        key: 'Ctrl-ArrowUp',
        run: () => host.focusNeighbour(this, -1, 'end')
      },
      {
        key: 'Ctrl-ArrowDown',
        run: () => host.focusNeighbour(this, 1, 'start')
      },
      {
        key: 'ArrowUp',
        run: (view: EditorView) =>
          atFirstLine(view) && host.focusNeighbour(this, -1, 'end')
      },
      {
        key: 'ArrowDown',
        run: (view: EditorView) =>
          atLastLine(view) && host.focusNeighbour(this, 1, 'start')
      },
      {
        key: 'Escape',
        run: () => {
          host.leave(this);
          return true;
        }
      }
    ];
  }

  private readonly _host: CellHost;
  private readonly _editable = new Compartment();
  private _inFlight = false;
  private _catchingUp = false;
  private _destroyed = false;
}

/** Viewers get read-only editors: no typing, no paste, no drop. */
function editability(editable: boolean): Extension {
  return [
    EditorState.readOnly.of(!editable),
    EditorView.editable.of(editable)
  ];
}
