/**
 * The notebook's one output frame, seen from the page: marimo's own frontend
 * (served by the server from the kernel's marimo, in read mode) renders every
 * cell's output in it, in boxes the page places beside its editors.
 *
 * The frame is sandboxed (opaque origin, no credentials). The page holds the
 * connection: it feeds the frame outputs, UI values and marimo's kernel
 * notifications, and turns what marimo's app asks its "server" into protocol
 * messages, after checking each for the user's role and for the UI elements
 * really shown (docs/widgets.md).
 */
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { CellOutput, Role } from '../protocol';
import {
  FunctionCall,
  messageType,
  parseFunctionCall,
  parseSetModelValue,
  parseSetUiValues,
  parseSizes,
  PREFIX,
  SetModelValue,
  uiElementsIn
} from './protocol';

/** What the frame's requests become: protocol messages sent by the session. */
export interface OutputFrameHost {
  role(): Role | null;
  setUiValue(objectId: string, value: unknown): void;
  /** Resolves to an error message when the server refused the call. */
  functionCall(call: FunctionCall): Promise<string | null>;
  setModelValue(update: SetModelValue): void;
  /** marimo's frontend did not start in the frame (null: it did, after all). */
  frameProblem(message: string | null): void;
}

/** marimo's app is up in about 2 s here; past this the person must hear why outputs are missing. */
const READY_TIMEOUT_MS = 30_000;

/** marimo notifications that marimo's app in the frame needs (outputs go as `mc:outputs`). */
const FORWARDED_OPS = new Set([
  'send-ui-element-message',
  'remove-ui-elements',
  'function-call-result',
  'model-lifecycle'
]);

interface CellState {
  output: CellOutput | null;
  status: string;
  /** object-id → random-id of the UI elements in the output. */
  elements: Map<string, string>;
}

interface StoredValue {
  value: unknown;
  /** The element instance the value belongs to (null: the next one shown). */
  randomId: string | null;
}

/** JupyterLab's theme, as marimo names it. */
function currentTheme(): 'light' | 'dark' {
  return document.body.dataset.jpThemeLight === 'false' ? 'dark' : 'light';
}

export type LayoutEntry = [cellId: string, top: number, shown: boolean];

export class OutputFrame implements IDisposable {
  readonly node: HTMLIFrameElement;

  constructor(private readonly _host: OutputFrameHost) {
    this.node = document.createElement('iframe');
    this.node.className = 'jp-MarimoCollab-outputFrame';
    // allow-scripts without allow-same-origin: an opaque origin (the server adds a CSP sandbox).
    this.node.setAttribute('sandbox', 'allow-scripts allow-downloads allow-popups');
    this.node.setAttribute('referrerpolicy', 'no-referrer');
    this.node.title = 'Outputs';
    this._load();
    window.addEventListener('message', this._onMessage);
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (!this._disposed) {
      this._disposed = true;
      window.clearTimeout(this._readyTimer);
      window.removeEventListener('message', this._onMessage);
      this.node.remove();
    }
  }

  /** Each cell's output height, as marimo rendered it. */
  get sizesChanged(): ISignal<this, Map<string, number>> {
    return this._sizesChanged;
  }

  /** Whether marimo's app in the frame is up and has everything. */
  get ready(): boolean {
    return this._ready;
  }

  /** The theme changed: load the frame again if light/dark did (marimo reads it at start). */
  themeChanged(): void {
    if (currentTheme() !== this._theme) {
      this._load();
    }
  }

  setOutput(cellId: string, output: CellOutput | null, status: string): void {
    const known = this._cells.get(cellId);
    if (known && known.output === output) {
      // Only the run status moved (queued, running, idle): the frame keeps what it shows.
      known.status = status;
      this._post({ type: `${PREFIX}status`, id: cellId, status });
      return;
    }
    const html = output?.mimetype === 'text/html' && typeof output.data === 'string' ? output.data : '';
    const elements = uiElementsIn(html);
    elements.forEach((randomId, objectId) => {
      const stored = this._values.get(objectId);
      if (stored && stored.randomId !== null && stored.randomId !== randomId) {
        // Created again (its cell ran): back to its initial value, as in the kernel.
        this._values.delete(objectId);
      } else if (stored) {
        stored.randomId = randomId;
      }
    });
    this._cells.set(cellId, { output, status, elements });
    this._post({ type: `${PREFIX}outputs`, cells: [{ id: cellId, output, status }] });
  }

  removeCell(cellId: string): void {
    this._cells.delete(cellId);
  }

  /** The join snapshot's `ui_values` and widget models: they replace what we knew. */
  applySnapshot(
    values: Record<string, unknown>,
    models: Record<string, Record<string, unknown>> = {}
  ): void {
    this._values.clear();
    Object.entries(values).forEach(([objectId, value]) => this._store(objectId, value));
    this._models = models;
    this._sendModels();
    this._post({ type: `${PREFIX}ui-values`, values });
  }

  /** anywidget models open before the outputs that show them, as marimo's kernel sends them. */
  private _sendModels(): void {
    Object.entries(this._models).forEach(([modelId, message]) =>
      this._post({
        type: `${PREFIX}kernel`,
        op: 'model-lifecycle',
        data: { model_id: modelId, message }
      })
    );
  }

  /** A kernel notification: the ones marimo's app needs go into the frame. */
  kernel(op: string, data: Record<string, unknown>): void {
    if (op === 'send-ui-element-message' && typeof data.ui_element === 'string') {
      const message = data.message as { type?: unknown; value?: unknown } | undefined;
      if (message?.type === 'marimo-ui-value-update' && message.value !== undefined) {
        this._store(data.ui_element, message.value); // another peer moved a control
      }
    }
    if (FORWARDED_OPS.has(op)) {
      this._post({ type: `${PREFIX}kernel`, op, data });
    }
  }

  /** The role changed: controls become usable or read-only. */
  roleChanged(): void {
    this._post({ type: `${PREFIX}read-only`, readOnly: this._readOnly() });
  }

  /** Where each cell's output goes (px from the frame's top) and how wide. */
  layout(cells: LayoutEntry[], width: number): void {
    this._layout = { cells, width };
    this._post({ type: `${PREFIX}layout`, cells, width });
  }

  private _load(): void {
    this._ready = false;
    window.clearTimeout(this._readyTimer);
    this._readyTimer = window.setTimeout(() => {
      if (!this._ready && !this._disposed) {
        this._host.frameProblem(
          "Outputs cannot be shown: marimo's frontend did not start in the output frame " +
            '(is marimo installed for the kernel? see the server log)'
        );
      }
    }, READY_TIMEOUT_MS);
    this._theme = currentTheme();
    const url = URLExt.join(PageConfig.getBaseUrl(), 'marimo-collab/frontend/');
    this.node.src = `${url}?theme=${this._theme}`;
  }

  private _readOnly(): boolean {
    return this._host.role() !== 'runner';
  }

  private _store(objectId: string, value: unknown): void {
    this._values.set(objectId, { value, randomId: this._shownRandomId(objectId) });
  }

  private _shownRandomId(objectId: string): string | null {
    for (const cell of this._cells.values()) {
      const randomId = cell.elements.get(objectId);
      if (randomId !== undefined) {
        return randomId;
      }
    }
    return null;
  }

  private _isShown(objectId: string): boolean {
    return this._shownRandomId(objectId) !== null;
  }

  private _post(message: Record<string, unknown>): void {
    if (this._ready) {
      // '*': a sandboxed frame's origin is opaque ("null") and cannot be named.
      this.node.contentWindow?.postMessage(message, '*');
    }
  }

  /** marimo's app is listening: give it everything, in the order it needs. */
  private _sendState(): void {
    this._post({ type: `${PREFIX}read-only`, readOnly: this._readOnly() });
    this._sendModels();
    const values: Record<string, unknown> = {};
    this._values.forEach((stored, objectId) => (values[objectId] = stored.value));
    this._post({ type: `${PREFIX}ui-values`, values });
    const cells = [...this._cells].map(([id, cell]) => ({ id, output: cell.output, status: cell.status }));
    this._post({ type: `${PREFIX}outputs`, cells });
    if (this._layout) {
      this._post({ type: `${PREFIX}layout`, ...this._layout });
    }
  }

  /** The value a refused change must be put back to. */
  private _currentValue(objectId: string): unknown {
    const stored = this._values.get(objectId);
    if (stored) {
      return stored.value;
    }
    for (const cell of this._cells.values()) {
      if (cell.elements.has(objectId) && typeof cell.output?.data === 'string') {
        const doc = new DOMParser().parseFromString(cell.output.data, 'text/html');
        const host = doc.querySelector(`marimo-ui-element[object-id="${CSS.escape(objectId)}"]`);
        const initial = host?.firstElementChild?.getAttribute('data-initial-value');
        try {
          return initial ? (JSON.parse(initial) as unknown) : undefined;
        } catch {
          return undefined;
        }
      }
    }
    return undefined;
  }

  private _onSetUiValues(data: Record<string, unknown>): void {
    const request = parseSetUiValues(data);
    if (!request || !request.objectIds.every(id => this._isShown(id))) {
      return; // not an element of this notebook's outputs
    }
    if (this._readOnly()) {
      // Put the controls back: only runners change values (docs/protocol.md, roles).
      const values: Record<string, unknown> = {};
      request.objectIds.forEach(id => (values[id] = this._currentValue(id)));
      this._post({ type: `${PREFIX}ui-values`, values });
      return;
    }
    request.objectIds.forEach((objectId, index) => {
      const value = request.values[index];
      this._store(objectId, value);
      this._host.setUiValue(objectId, value);
    });
  }

  private async _onFunctionCall(data: Record<string, unknown>): Promise<void> {
    const call = parseFunctionCall(data);
    if (!call || !this._isShown(call.namespace)) {
      return;
    }
    const refused = await this._host.functionCall(call);
    if (refused !== null) {
      // marimo's element waits for an answer: give it the refusal in marimo's own form.
      this.kernel('function-call-result', {
        function_call_id: call.functionCallId,
        return_value: null,
        status: { code: 'error', title: 'Not allowed', message: refused }
      });
    }
  }

  /** Arrow: added and removed as the window's listener. */
  private readonly _onMessage = (event: MessageEvent): void => {
    if (event.source !== this.node.contentWindow || !event.source) {
      return; // not this notebook's frame
    }
    const type = messageType(event.data);
    const data = event.data as Record<string, unknown>;
    switch (type) {
      case 'ready':
        this._ready = true;
        window.clearTimeout(this._readyTimer);
        this._host.frameProblem(null);
        this._sendState();
        break;
      case 'sizes':
        this._sizesChanged.emit(parseSizes(data));
        break;
      case 'set-ui-values':
        this._onSetUiValues(data);
        break;
      case 'function-call':
        void this._onFunctionCall(data);
        break;
      case 'set-model-value': {
        const update = parseSetModelValue(data);
        if (update && !this._readOnly()) {
          this._host.setModelValue(update);
        }
        break;
      }
    }
  };

  private _cells = new Map<string, CellState>();
  private _values = new Map<string, StoredValue>();
  private _models: Record<string, Record<string, unknown>> = {};
  private _layout: { cells: LayoutEntry[]; width: number } | null = null;
  private _ready = false;
  private _theme: 'light' | 'dark' = 'light';
  private _readyTimer = 0;
  private _disposed = false;
  private _sizesChanged = new Signal<this, Map<string, number>>(this);
}
