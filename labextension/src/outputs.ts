/**
 * Each cell's output area, fed by the join snapshot and the kernel's relayed
 * `cell-op` notifications (docs/protocol.md, "Running").
 *
 * The output itself is rendered by marimo's own frontend in the notebook's one
 * sandboxed output frame (./widgets/bridge.ts); here the cell keeps a slot of
 * the height marimo rendered it at, which the frame's box for the cell covers.
 * The console (stdout, stderr, tracebacks) is text, shown under the code as
 * in marimo.
 */
import { CellOutput, CellOutputState } from './protocol';
import { OutputFrame } from './widgets/bridge';

function plainText(text: string, className: string): HTMLElement {
  const pre = document.createElement('pre');
  pre.className = className;
  pre.textContent = text;
  return pre;
}

/** marimo errors: a list of {type, msg, ...}; their messages as text. */
function errorText(data: unknown): string {
  if (!Array.isArray(data)) {
    return typeof data === 'string' ? data : JSON.stringify(data, null, 2);
  }
  return data
    .map(error => {
      if (error && typeof error === 'object') {
        const { type, msg } = error as { type?: unknown; msg?: unknown };
        return [type, msg].filter(x => typeof x === 'string').join(': ');
      }
      return String(error);
    })
    .join('\n');
}

/** The text of HTML (tracebacks): parsed inertly, never inserted. */
function htmlText(html: string): string {
  return new DOMParser().parseFromString(html, 'text/html').body.textContent ?? '';
}

/** One console item as text; null when there is nothing to show. */
export function renderConsoleItem(output: CellOutput): HTMLElement | null {
  const { mimetype = 'text/plain', data } = output;
  if (data === undefined || data === null || data === '') {
    return null;
  }
  const stream = output.channel === 'stderr' ? ' jp-MarimoCollab-stderr' : '';
  if (mimetype === 'application/vnd.marimo+error') {
    return plainText(errorText(data), 'jp-MarimoCollab-outputError');
  }
  if (typeof data !== 'string') {
    return plainText(JSON.stringify(data, null, 2), `jp-MarimoCollab-outputText${stream}`);
  }
  if (mimetype === 'text/html' || mimetype === 'application/vnd.marimo+traceback') {
    return plainText(htmlText(data), `jp-MarimoCollab-outputText${stream}`);
  }
  return plainText(data, `jp-MarimoCollab-outputText${stream}`);
}

/** A cell's output slot (above its code) and console (below), as in marimo. */
export class CellOutputArea {
  /** The slot the frame's box for this cell covers; `data-run-status` is marimo's status. */
  readonly node: HTMLElement;
  readonly console: HTMLElement;

  constructor(
    private readonly _cellId: string,
    private readonly _frame: OutputFrame
  ) {
    this.node = document.createElement('div');
    this.node.className = 'jp-MarimoCollab-outputArea';
    this._slot = document.createElement('div');
    this._slot.className = 'jp-MarimoCollab-output';
    this._slot.dataset.outputCell = _cellId;
    this.node.append(this._slot);
    this.console = document.createElement('div');
    this.console.className = 'jp-MarimoCollab-console';
    this.setStatus('idle');
  }

  /** The slot's element: the panel places the frame's box over it. */
  get slot(): HTMLElement {
    return this._slot;
  }

  /** The height marimo rendered this cell's output at. */
  setHeight(height: number): void {
    this._slot.style.height = `${height}px`;
  }

  /** queued, running, idle, stale, ... as marimo reports it. */
  setStatus(status: string): void {
    this.node.dataset.runStatus = status;
    this._status = status;
  }

  /**
   * Apply a snapshot entry or a `cell-op`. As in marimo, a null or missing
   * field means "unchanged"; a console list replaces (often [] to clear) and
   * a single console item appends.
   */
  apply(state: CellOutputState | Record<string, unknown>): void {
    if (typeof state.status === 'string') {
      this.setStatus(state.status);
    }
    const output = state.output as CellOutput | null | undefined;
    if (output) {
      this._output = output;
    }
    if (output || typeof state.status === 'string') {
      this._frame.setOutput(this._cellId, this._output, this._status);
    }
    const console = state.console;
    if (Array.isArray(console)) {
      this.console.replaceChildren();
      console.forEach(item => this._appendConsole(item as CellOutput));
    } else if (console && typeof console === 'object') {
      this._appendConsole(console as CellOutput);
    }
  }

  clear(): void {
    this._output = null;
    this.console.replaceChildren();
    this.setStatus('idle');
    this._frame.setOutput(this._cellId, null, 'idle');
  }

  private _appendConsole(output: CellOutput): void {
    const node = renderConsoleItem(output);
    if (node) {
      this.console.appendChild(node);
    }
  }

  private _slot: HTMLElement;
  private _output: CellOutput | null = null;
  private _status = 'idle';
}
