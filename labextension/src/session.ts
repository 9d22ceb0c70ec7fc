/**
 * The client side of one notebook room: joins (and re-joins) over the
 * connection, keeps a CellView per cell, routes the server's messages to
 * editors, structure, presence and outputs, and carries out the user's
 * notebook actions. The DOM arrangement is the widget's job.
 */
import { Notification } from '@jupyterlab/apputils';
import { ChangeSet, Extension } from '@codemirror/state';
import { EditorView } from '@codemirror/view';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { CellEditor, CellHost } from './cells';
import { CellActions, CellView } from './cellview';
import { NotebookConnection } from './connection';
import {
  remoteCursors,
  PresenceModel,
  setRemoteCursors
} from './presence';
import {
  BlameLine,
  CellHistory,
  CellOp,
  CellSnapshot,
  JoinResult,
  KernelSnapshot,
  PeerInfo,
  ProtocolError,
  PushEntry,
  Role,
  ServerEvent,
  Suggestion,
  WireUpdate
} from './protocol';
import { offerUnsentText, UnsentText } from './recovery';
import { NotebookStatus } from './status';
import { NotebookStructure } from './structure';
import { OutputFrame } from './widgets/bridge';

export interface SessionOptions {
  /** The notebook path relative to the server root. */
  path: string;
  connection: NotebookConnection;
  theme: Extension;
  /** Ask the user a name (rename); null when cancelled. */
  askName(current: string): Promise<string | null>;
  /** Ask before deleting a cell. */
  confirmDelete(label: string): Promise<boolean>;
}

const CURSOR_THROTTLE_MS = 80;
/** How long run/save wait for a cell's edits to reach the server first. */
const SETTLE_TIMEOUT_MS = 3000;

export class NotebookSession implements CellHost, CellActions, IDisposable {
  /** This client's peer id for the whole session (kept across reconnects). */
  readonly peerId: string = crypto.randomUUID();
  readonly presence = new PresenceModel();
  /** marimo's own frontend renders every output here; its requests become ours. */
  readonly outputFrame = new OutputFrame({
    role: () => this.role,
    setUiValue: (objectId, value) =>
      void this._request(
        { type: 'set_ui_value', object_id: objectId, value },
        'Setting a UI value failed'
      ),
    frameProblem: message => {
      if (message !== null) {
        this._setStatus({ problem: message });
      } else if (this._status.problem.startsWith('Outputs cannot be shown')) {
        this._setStatus({ problem: '' });
      }
    },
    functionCall: async call => {
      try {
        await this._connection.request({
          type: 'function_call',
          function_call_id: call.functionCallId,
          namespace: call.namespace,
          function_name: call.functionName,
          args: call.args
        });
        return null;
      } catch (error) {
        return error instanceof Error ? error.message : String(error);
      }
    },
    setModelValue: update =>
      void this._request(
        {
          type: 'set_model_value',
          model_id: update.modelId,
          message: update.message,
          buffers: update.buffers
        },
        'Updating a widget failed'
      )
  });

  constructor(private readonly _options: SessionOptions) {
    this._connection = _options.connection;
    this._connection.opened.connect(() => void this._join(), this);
    this._connection.statusChanged.connect(this._onConnectionStatus, this);
    this._connection.eventReceived.connect((_, event) => this._onEvent(event), this);
    this.presence.changed.connect(this._onPresenceChanged, this);
    this.presence.cursorMoved.connect((_, moved) => this._onCursorMoved(moved), this);
  }

  /** Cells in notebook order. */
  get cells(): CellView[] {
    if (!this._structure) {
      return [];
    }
    return this._structure.order
      .map(id => this._views.get(id))
      .filter((view): view is CellView => !!view);
  }

  /** The language of every editor created from now on (Python, loaded lazily). */
  setLanguage(language: Extension): void {
    this._language = language;
  }

  /** A cell's marimo name ("_" when unnamed). */
  cellName(cellId: string): string {
    return this._structure?.meta.get(cellId)?.name ?? '_';
  }

  get role(): Role | null {
    return this.presence.self?.role ?? null;
  }

  get status(): NotebookStatus {
    return { ...this._status };
  }

  /** Whether the room has been joined and requests may flow. */
  get connected(): boolean {
    return this._joined;
  }

  /** Why a cell's code starts collapsed: marimo's `hide_code`, a markdown cell, or not. */
  codeHidden(cellId: string): 'config' | 'markdown' | null {
    const config = this._structure?.meta.get(cellId)?.config as { hide_code?: unknown } | undefined;
    if (config?.hide_code === true) {
      return 'config';
    }
    if (config?.hide_code === false) {
      return null; // someone showed it for everyone
    }
    const code = this._views.get(cellId)?.editor.view.state.doc.toString() ?? '';
    return /^\s*mo\.md\(/.test(code) ? 'markdown' : null;
  }

  /** marimo's `hide_code` for everyone: a cell-config edit, saved with the notebook. */
  setHideCode(cellId: string, hidden: boolean): void {
    const config = this._structure?.meta.get(cellId)?.config ?? {};
    void this._cellsRequest([
      { op: 'config', cell_id: cellId, config: { ...config, hide_code: hidden } }
    ]);
  }

  /** Cells were added, removed, moved or renamed; or a fresh join. */
  get layoutChanged(): ISignal<this, void> {
    return this._layoutChanged;
  }

  get statusChanged(): ISignal<this, NotebookStatus> {
    return this._statusChanged;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._connection.dispose();
    this.outputFrame.dispose();
    this._views.forEach(view => view.dispose());
    this._views.clear();
    Signal.clearData(this);
  }

  // ---- joining ----------------------------------------------------------------

  private async _join(): Promise<void> {
    this._joined = false;
    const request: Record<string, unknown> = { type: 'join', peer_id: this.peerId };
    const resuming = this._epoch !== null && this._structure !== null;
    if (resuming) {
      // Resume: the server sends only what each cell missed (same epoch).
      request.session = this._epoch;
      request.versions = Object.fromEntries(
        [...this._views.values()].map(view => [view.cellId, view.editor.syncedVersion])
      );
    }
    let result: JoinResult;
    try {
      result = (await this._connection.request(request)) as unknown as JoinResult;
    } catch (error) {
      if (error instanceof ProtocolError && error.code !== 'disconnected') {
        this._setStatus({ problem: `Cannot open this notebook: ${error.message}` });
      }
      return;
    }
    const resumed = resuming && result.session === this._epoch;
    const unsent = resumed ? this._resume(result) : this._startFresh(result);
    if (!resumed) {
      this._setStatus({ save: 'saved', saveDetail: 'Loaded from the file' });
    }
    this._epoch = result.session;
    this.presence.reset(result.self, result.peers);
    this._applyKernelSnapshot(result.kernel);
    this._suggestions = new Map((result.suggestions ?? []).map(s => [s.id, s]));
    this._joined = true;
    this._setStatus({
      problem: '',
      kernel: result.kernel?.status ?? this._status.kernel,
      role: result.self.role
    });
    this._applyRole();
    this._showSuggestions();
    this._layoutChanged.emit();
    this._refreshAllCursors();
    // Edits made while offline go out now, after catching up.
    this._views.forEach(view => view.editor.flush());
    this._updateUnsent();
    void offerUnsentText(unsent);
  }

  /** First join, or the server lost our epoch: rebuild every cell from the snapshot. */
  private _startFresh(result: JoinResult): UnsentText[] {
    const unsent = this._unsentTexts([...this._views.keys()]);
    this._views.forEach(view => view.dispose());
    this._views.clear();
    const cells = result.notebook.cells;
    for (const cell of cells) {
      this._addCell(cell.id, cell.code ?? '', cell.version);
    }
    this._structure = new NotebookStructure(result.notebook.structure_version, cells);
    return unsent;
  }

  /** Same epoch: apply each cell's missed pushes (once per push), keep the editors. */
  private _resume(result: JoinResult): UnsentText[] {
    const cells = result.notebook.cells;
    const present = new Set(cells.map(cell => cell.id));
    const lost = [...this._views.keys()].filter(id => !present.has(id));
    const unsent = this._unsentTexts(lost, 'deleted while you were away');
    lost.forEach(id => this._removeCell(id));
    for (const cell of cells) {
      unsent.push(...this._catchUpCell(cell));
    }
    this._structure = new NotebookStructure(result.notebook.structure_version, cells);
    return unsent;
  }

  private _catchUpCell(cell: CellSnapshot): UnsentText[] {
    const view = this._views.get(cell.id);
    if (!view) {
      this._addCell(cell.id, cell.code ?? '', cell.version);
      return [];
    }
    if (cell.changes) {
      cell.changes.forEach(entry => view.editor.receive(entry));
      return [];
    }
    // The server could not give the missed pushes: start the cell over.
    const unsent = this._unsentTexts([cell.id]);
    this._removeCell(cell.id);
    this._addCell(cell.id, cell.code ?? '', cell.version);
    return unsent;
  }

  private _unsentTexts(cellIds: string[], why = ''): UnsentText[] {
    return cellIds
      .map(id => this._views.get(id))
      .filter((view): view is CellView => !!view && view.editor.unsentCount > 0)
      .map(view => ({
        label: this._label(view.cellId) + (why ? ` (${why})` : ''),
        text: view.editor.text,
        unsent: view.editor.unsentCount
      }));
  }

  private _label(cellId: string): string {
    const name = this._structure?.meta.get(cellId)?.name;
    const index = this._structure?.indexOf(cellId) ?? -1;
    return name && name !== '_' ? `Cell "${name}"` : `Cell ${index + 1}`;
  }

  private _addCell(cellId: string, code: string, version: number): CellView {
    const editor = new CellEditor({
      cellId,
      code,
      version,
      editable: this.role === 'editor' || this.role === 'runner',
      host: this,
      theme: this._options.theme,
      language: this._language,
      extra: remoteCursors()
    });
    const view = new CellView(editor, this, this.outputFrame);
    view.setRole(this.role);
    editor.view.contentDOM.addEventListener('focus', () => this._setActive(cellId));
    this._views.set(cellId, view);
    return view;
  }

  private _removeCell(cellId: string): void {
    this._views.get(cellId)?.dispose();
    this._views.delete(cellId);
    this.outputFrame.removeCell(cellId);
    if (this._activeCell === cellId) {
      this._activeCell = null;
    }
  }

  // ---- server events ----------------------------------------------------------

  private _onEvent(event: ServerEvent): void {
    if (!this._joined && event.type !== 'presence') {
      // Before the join answer we have nothing to apply it to; join covers it.
      return;
    }
    switch (event.type) {
      case 'change':
        if (this._views.get(event.document_id)?.editor.syncedVersion === event.version) {
          this._moveSuggestions(event.document_id, event.updates); // applied once, here
        }
        this._views.get(event.document_id)?.editor.receive(event);
        this._views.get(event.document_id)?.refreshReview();
        this._markModified();
        break;
      case 'cells':
        this._onCells(event.structure_version, event.ops);
        this._showSuggestions();
        break;
      case 'suggestion':
        if (event.event === 'created') {
          this._suggestions.set(event.suggestion.id, event.suggestion);
        } else {
          this._suggestions.delete(event.suggestion.id);
        }
        this._showSuggestions();
        break;
      case 'cursor':
        this.presence.moveCursor(event.peer_id, {
          document_id: event.document_id,
          version: event.version,
          anchor: event.anchor,
          head: event.head
        });
        break;
      case 'presence':
        if (this._joined) {
          this.presence.update(event.event, event.peer);
        }
        break;
      case 'saving':
        this._setStatus({ save: 'saving', saveDetail: 'The server is writing the file' });
        break;
      case 'file_status':
        this._onFileStatus(event.status, event.message);
        break;
      case 'saved':
        this._setStatus({ save: 'saved', saveDetail: `Saved at ${localTime(event.at)}` });
        break;
      case 'save_failed':
        this._setStatus({ save: 'failed', saveDetail: event.message });
        Notification.error(`Saving the notebook failed: ${event.message}`, {
          autoClose: false
        });
        break;
      case 'kernel':
        this._onKernel(event.op, event.data);
        break;
      case 'kernel_status':
        if (event.status === 'starting') {
          // A (re)started kernel has none of the old results.
          this._views.forEach(view => view.outputs.clear());
          this.outputFrame.applySnapshot({});
        }
        this._setStatus({ kernel: event.status, kernelDetail: event.message ?? '' });
        break;
    }
  }

  private _onCells(version: number, ops: CellOp[]): void {
    const structure = this._structure;
    if (!structure || version <= structure.version) {
      return;
    }
    if (version !== structure.version + 1) {
      this.resync('missed a structure change'); // re-join brings the whole structure
      return;
    }
    const delta = structure.apply(version, ops);
    if (!delta) {
      return;
    }
    const unsent = this._unsentTexts(delta.deleted, 'deleted by a collaborator');
    delta.deleted.forEach(id => this._removeCell(id));
    delta.created.forEach(({ cellId, code }) => this._addCell(cellId, code, 0));
    this._markModified();
    this._layoutChanged.emit();
    void offerUnsentText(unsent);
  }

  /** The notebook file changed on disk, vanished, or came back (the server merges). */
  private _onFileStatus(status: string, message: string): void {
    if (status === 'missing' || status === 'unreadable') {
      this._setStatus({ problem: message });
      Notification.warning(message, { autoClose: false });
    } else {
      if (this._status.problem) {
        this._setStatus({ problem: '' });
      }
      Notification.info(message, { autoClose: 5000 });
    }
  }

  private _onKernel(op: string, data: Record<string, unknown>): void {
    if (op === 'cell-op' && typeof data.cell_id === 'string') {
      this._views.get(data.cell_id)?.outputs.apply(data);
    } else {
      // UI values, function results, widget models: marimo's app in the frame needs them.
      this.outputFrame.kernel(op, data);
    }
  }

  private _applyKernelSnapshot(kernel: KernelSnapshot | undefined): void {
    this._views.forEach(view => view.outputs.clear());
    for (const [cellId, state] of Object.entries(kernel?.outputs ?? {})) {
      this._views.get(cellId)?.outputs.apply(state);
    }
    this.outputFrame.applySnapshot(kernel?.ui_values ?? {}, kernel?.models ?? {});
  }

  private _onConnectionStatus(): void {
    if (this._connection.status !== 'connected') {
      this._joined = false;
    }
    this._setStatus({ connection: this._connection.status });
  }

  // ---- presence ---------------------------------------------------------------

  private _onPresenceChanged(): void {
    if (this.role !== this._status.role) {
      this._setStatus({ role: this.role });
      this._applyRole();
    }
    const following = this.presence.following;
    if (following !== this._followed) {
      this._followed = following;
      if (following) {
        this._reveal(this.presence.peer(following));
      }
    }
    this._refreshAllCursors();
  }

  private _onCursorMoved(moved: { peer: PeerInfo; cells: string[] }): void {
    moved.cells.forEach(id => this._refreshCursors(id));
    if (moved.peer.peer_id === this.presence.following) {
      this._reveal(moved.peer);
    }
  }

  private _refreshCursors(cellId: string): void {
    const editor = this._views.get(cellId)?.editor;
    if (!editor) {
      return;
    }
    const cursors = this.presence.cursorsIn(cellId).map(cursor => ({
      ...cursor,
      anchor: editor.fromSynced(cursor.anchor, cursor.version),
      head: editor.fromSynced(cursor.head, cursor.version)
    }));
    editor.view.dispatch({ effects: setRemoteCursors.of(cursors) });
  }

  private _refreshAllCursors(): void {
    this._views.forEach((_, id) => this._refreshCursors(id));
  }

  /** Follow: bring a collaborator's cursor into view. */
  private _reveal(peer: PeerInfo | undefined): void {
    const cursor = peer?.cursor;
    const view = cursor ? this._views.get(cursor.document_id) : undefined;
    if (!cursor || !view) {
      return;
    }
    const pos = Math.min(cursor.head, view.editor.view.state.doc.length);
    view.node.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    view.editor.view.dispatch({
      effects: EditorView.scrollIntoView(pos, { y: 'center' })
    });
  }

  // ---- suggestions and history (docs/protocol.md) -------------------------------

  /** Each cell shows its pending suggestions; a new-cell one shows under the cell it follows. */
  private _showSuggestions(): void {
    const first = this._structure?.order[0];
    const byCell = new Map<string, Suggestion[]>();
    for (const s of this._suggestions.values()) {
      const where = s.kind === 'edit' ? s.cell_id : (s.after ?? first);
      if (where) {
        byCell.set(where, [...(byCell.get(where) ?? []), s]);
      }
    }
    this._views.forEach((view, id) => view.setSuggestions(byCell.get(id) ?? []));
  }

  /** Keep suggestions' ranges on the server's text, as the server does (protocol). */
  private _moveSuggestions(cellId: string, updates: WireUpdate[]): void {
    for (const s of this._suggestions.values()) {
      if (s.kind !== 'edit' || s.cell_id !== cellId || s.from === undefined) {
        continue;
      }
      for (const update of updates) {
        const changes = ChangeSet.fromJSON(update.changes);
        const empty = s.from === s.to;
        s.from = changes.mapPos(s.from, 1);
        s.to = empty ? s.from : changes.mapPos(s.to ?? s.from, -1);
      }
    }
  }

  acceptSuggestion(id: string): void {
    void this._request(
      { type: 'accept_suggestion', suggestion_id: id },
      'Accepting the suggestion failed'
    );
  }

  rejectSuggestion(id: string): void {
    void this._request(
      { type: 'reject_suggestion', suggestion_id: id },
      'Rejecting the suggestion failed'
    );
  }

  async cellHistory(cellId: string): Promise<CellHistory | null> {
    const answer = await this._request(
      { type: 'cell_history', cell_id: cellId },
      'Loading the history failed'
    );
    return answer as unknown as CellHistory | null;
  }

  async blame(cellId: string): Promise<BlameLine[] | null> {
    const answer = await this._request(
      { type: 'blame', cell_id: cellId },
      'Loading who wrote each line failed'
    );
    return (answer?.lines as BlameLine[] | undefined) ?? null;
  }

  /** Restore a past version as this person's edit: only the difference is sent. */
  async restore(cellId: string, version: number): Promise<void> {
    const answer = await this._request(
      { type: 'cell_history', cell_id: cellId, version },
      'Restoring the version failed'
    );
    const code = answer?.code;
    const editor = this._views.get(cellId)?.editor;
    if (typeof code !== 'string' || !editor) {
      return;
    }
    const now = editor.text;
    let start = 0;
    while (start < now.length && start < code.length && now[start] === code[start]) {
      start++;
    }
    let end = 0;
    while (
      end < now.length - start &&
      end < code.length - start &&
      now[now.length - 1 - end] === code[code.length - 1 - end]
    ) {
      end++;
    }
    editor.view.dispatch({
      changes: { from: start, to: now.length - end, insert: code.slice(start, code.length - end) },
      userEvent: 'input.restore'
    });
  }

  async restoreNotebook(at: number): Promise<void> {
    await this._request({ type: 'restore_notebook', at }, 'Restoring the notebook failed');
  }

  private _applyRole(): void {
    this._views.forEach(view => view.setRole(this.role));
    this.outputFrame.roleChanged();
  }

  // ---- CellHost: what editors ask of the room ----------------------------------

  async push(cellId: string, version: number, updates: WireUpdate[]): Promise<void> {
    await this._connection.request({
      type: 'change',
      document_id: cellId,
      version,
      updates
    });
  }

  async pull(cellId: string, version: number): Promise<PushEntry[]> {
    const response = await this._connection.request({
      type: 'pull',
      document_id: cellId,
      version
    });
    return (response.changes as PushEntry[]) ?? [];
  }

  resync(reason: string): void {
    console.info(`marimo-collab: re-joining (${reason})`);
    this._joined = false;
    this._connection.reconnect();
  }

  localActivity(cell: CellEditor, docChanged: boolean): void {
    this._updateUnsent();
    if (docChanged) {
      this._markModified();
    }
    if (cell.view.hasFocus) {
      this._scheduleCursor(cell);
    }
  }

  runAndAdvance(cell: CellEditor): void {
    this.run(cell.cellId, true);
  }

  focusNeighbour(cell: CellEditor, direction: -1 | 1, at: 'start' | 'end'): boolean {
    const target = this._neighbour(cell.cellId, direction);
    if (!target) {
      return false;
    }
    target.editor.focus(at);
    return true;
  }

  leave(cell: CellEditor): void {
    this._views.get(cell.cellId)?.node.focus();
  }

  pushFailed(cell: CellEditor, error: ProtocolError): void {
    const reason =
      error.code === 'forbidden'
        ? 'you may not edit this notebook'
        : `the server refused an edit (${error.code}: ${error.message})`;
    this._setStatus({ problem: `${this._label(cell.cellId)}: ${reason}. Your text is kept.` });
  }

  // ---- CellActions and toolbar actions ------------------------------------------

  run(cellId: string, advance: boolean): void {
    if (advance) {
      this._advanceFrom(cellId);
    }
    if (this.role !== 'runner') {
      if (this.role === 'editor') {
        Notification.info('You may edit this notebook but not run it.', {
          autoClose: 3000
        });
      }
      return;
    }
    void this._runCells([cellId]);
  }

  /** The JupyterLab theme changed: marimo's app takes its theme when it starts. */
  themeChanged(): void {
    this.outputFrame.themeChanged();
  }

  runAll(): void {
    void this._runCells(this._structure?.order ?? []);
  }

  async interrupt(): Promise<void> {
    await this._request({ type: 'interrupt' }, 'Interrupting the kernel failed');
  }

  async restartKernel(): Promise<void> {
    await this._request({ type: 'restart_kernel' }, 'Restarting the kernel failed');
  }

  move(cellId: string, direction: -1 | 1): void {
    const op = this._structure?.moveOp(cellId, direction);
    if (op) {
      void this._cellsRequest([op]).then(() => this._views.get(cellId)?.node.focus());
    }
  }

  async remove(cellId: string): Promise<void> {
    if (!(await this._options.confirmDelete(this._label(cellId)))) {
      return;
    }
    const next = this._neighbour(cellId, 1) ?? this._neighbour(cellId, -1);
    await this._cellsRequest([{ op: 'delete', cell_id: cellId }]);
    next?.node.focus();
  }

  async rename(cellId: string): Promise<void> {
    const current = this._structure?.meta.get(cellId)?.name ?? '_';
    const name = await this._options.askName(current);
    if (name !== null && name !== current) {
      await this._cellsRequest([{ op: 'rename', cell_id: cellId, name: name || '_' }]);
    }
  }

  /** Add an empty cell after the active one (or at the end) and focus it. */
  async addCell(after: string | null = this._activeCell ?? this._lastCell()): Promise<void> {
    const ids = await this._cellsRequest([{ op: 'create', after, code: '', name: '_' }]);
    const created = ids?.[0];
    if (created) {
      this._views.get(created)?.editor.focus('start');
    }
  }

  addCellAtEnd(): Promise<void> {
    return this.addCell(this._lastCell());
  }

  select(cellId: string, direction: -1 | 1): void {
    this._neighbour(cellId, direction)?.node.focus();
  }

  /** Ask the server to write the file (it owns saving; no client copy is written). */
  async save(): Promise<void> {
    if (this.role !== 'editor' && this.role !== 'runner') {
      Notification.info('Viewers cannot save this notebook.', { autoClose: 3000 });
      return;
    }
    this._setStatus({ save: 'saving', saveDetail: 'Asking the server to save' });
    await this._settle([...this._views.values()].map(view => view.editor));
    try {
      await this._connection.request({ type: 'save' });
      // The `saved` broadcast carries the time; this covers a save with nothing new to write.
      if (this._status.save === 'saving') {
        this._setStatus({ save: 'saved', saveDetail: 'Saved' });
      }
    } catch (error) {
      if (error instanceof ProtocolError && error.code === 'disconnected') {
        // Offline: nothing is lost; the edits go out (and get saved) on reconnect.
        this._setStatus({ save: 'modified', saveDetail: 'Offline: your edits are kept and sent on reconnect' });
        return;
      }
      const message = error instanceof Error ? error.message : String(error);
      this._setStatus({ save: 'failed', saveDetail: message });
      Notification.error(`Saving failed: ${message}`, { autoClose: 5000 });
    }
  }

  // ---- helpers ----------------------------------------------------------------

  private async _runCells(cellIds: string[]): Promise<void> {
    // Run what the user sees: let their pending edits reach the server first.
    await this._settle(
      cellIds.map(id => this._views.get(id)?.editor).filter(
        (editor): editor is CellEditor => !!editor
      )
    );
    await this._request({ type: 'run', cell_ids: cellIds }, 'Running failed');
  }

  private _advanceFrom(cellId: string): void {
    const next = this._neighbour(cellId, 1);
    if (next) {
      next.editor.focus('start');
    } else if (this.role === 'editor' || this.role === 'runner') {
      void this.addCell(cellId); // like marimo: Shift+Enter on the last cell adds one
    }
  }

  private _neighbour(cellId: string, direction: -1 | 1): CellView | undefined {
    const order = this._structure?.order ?? [];
    const index = order.indexOf(cellId);
    return index < 0 ? undefined : this._views.get(order[index + direction]);
  }

  private _lastCell(): string | null {
    const order = this._structure?.order ?? [];
    return order.length ? order[order.length - 1] : null;
  }

  private async _cellsRequest(ops: CellOp[]): Promise<string[] | null> {
    const response = await this._request(
      { type: 'cells', structure_version: this._structure?.version ?? 0, ops },
      'Changing the cells failed'
    );
    return (response?.cell_ids as string[] | undefined) ?? null;
  }

  private async _request(
    message: Record<string, unknown>,
    failure: string
  ): Promise<Record<string, unknown> | null> {
    try {
      return await this._connection.request(message);
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      Notification.error(`${failure}: ${text}`, { autoClose: 5000 });
      return null;
    }
  }

  /** Wait (bounded) until these editors have no unconfirmed edits. */
  private async _settle(editors: CellEditor[]): Promise<void> {
    const deadline = Date.now() + SETTLE_TIMEOUT_MS;
    editors.forEach(editor => editor.flush());
    while (editors.some(e => e.unsentCount > 0) && Date.now() < deadline && this._joined) {
      await new Promise(resolve => window.setTimeout(resolve, 30));
    }
  }

  private _setActive(cellId: string): void {
    this._activeCell = cellId;
    this._views.forEach((view, id) => view.setActive(id === cellId));
  }

  private _scheduleCursor(cell: CellEditor): void {
    this._cursorCell = cell;
    if (this._cursorTimer) {
      return;
    }
    this._cursorTimer = window.setTimeout(() => {
      this._cursorTimer = 0;
      const target = this._cursorCell;
      if (!target || !this._joined || !this._views.has(target.cellId)) {
        return;
      }
      const { anchor, head } = target.view.state.selection.main;
      this._connection.notify({
        type: 'cursor',
        document_id: target.cellId,
        version: target.syncedVersion,
        anchor: target.toSynced(anchor),
        head: target.toSynced(head)
      });
    }, CURSOR_THROTTLE_MS);
  }

  private _updateUnsent(): void {
    let unsent = 0;
    this._views.forEach(view => (unsent += view.editor.unsentCount));
    if (unsent !== this._status.unsent) {
      this._setStatus({ unsent });
    }
  }

  private _markModified(): void {
    if (this._status.save !== 'saving' && this._status.save !== 'modified') {
      this._setStatus({ save: 'modified', saveDetail: 'Edits not yet in the file' });
    }
  }

  private _setStatus(change: Partial<NotebookStatus>): void {
    this._status = { ...this._status, ...change };
    this._statusChanged.emit(this.status);
  }

  private readonly _connection: NotebookConnection;
  private _language: Extension = [];
  private _views = new Map<string, CellView>();
  private _suggestions = new Map<string, Suggestion>();
  private _structure: NotebookStructure | null = null;
  private _epoch: string | null = null;
  private _joined = false;
  private _activeCell: string | null = null;
  private _followed: string | null = null;
  private _cursorCell: CellEditor | null = null;
  private _cursorTimer = 0;
  private _disposed = false;
  private _status: NotebookStatus = {
    connection: 'connecting',
    unsent: 0,
    save: 'saved',
    saveDetail: '',
    kernel: 'none',
    kernelDetail: '',
    role: null,
    problem: ''
  };
  private _layoutChanged = new Signal<this, void>(this);
  private _statusChanged = new Signal<this, NotebookStatus>(this);
}

function localTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString();
}
