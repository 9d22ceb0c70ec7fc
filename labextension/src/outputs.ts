/**
 * Each cell's output area, fed by the join snapshot and the kernel's relayed
 * `cell-op` notifications (docs/protocol.md, "Running").
 *
 * Output HTML comes from code any collaborator may have written, so it never
 * runs in JupyterLab's origin: it is rendered only inside a sandboxed iframe
 * (scripts allowed, same-origin not: an opaque origin with no access to the
 * page, its cookies or its token), sized through checked postMessages.
 * Frames whose output has marimo UI elements also get the widget runtime
 * (./widgets), which talks to the page only through its WidgetHost.
 */
import { CellOutput, CellOutputState } from './protocol';
import { WidgetHost } from './widgets/bridge';
import { widgetScript } from './widgets/script';
import { widgetCss } from './widgets/frame/style';

const SIZE_MESSAGE = 'marimo-collab:output-size';
/** A runaway output should not make the notebook miles long. */
const MAX_FRAME_HEIGHT = 4000;

let listening = false;

/** Our output frame whose window sent a message, if any. */
function frameOf(source: MessageEventSource | null): HTMLIFrameElement | null {
  if (!source) {
    return null;
  }
  const all = document.querySelectorAll<HTMLIFrameElement>(
    'iframe.jp-MarimoCollab-outputFrame'
  );
  for (const frame of all) {
    if (frame.contentWindow === source) {
      return frame;
    }
  }
  return null;
}

function listenForSizes(): void {
  if (listening) {
    return;
  }
  listening = true;
  window.addEventListener('message', (event: MessageEvent) => {
    const frame = frameOf(event.source);
    if (!frame) {
      return; // not one of our output frames
    }
    const data: unknown = event.data;
    if (
      typeof data !== 'object' ||
      data === null ||
      (data as { type?: unknown }).type !== SIZE_MESSAGE
    ) {
      return;
    }
    const height = (data as { height?: unknown }).height;
    if (typeof height !== 'number' || !Number.isFinite(height) || height < 0) {
      return;
    }
    frame.style.height = `${Math.min(Math.ceil(height), MAX_FRAME_HEIGHT)}px`;
  });
}

/** A JupyterLab CSS variable's value on this page. */
function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

/** The frame cannot read our CSS variables (opaque origin): pass the theme in. */
function themeCss(): string {
  const v = cssVar;
  // Matching the page's color-scheme keeps the frame transparent (Chrome
  // paints an opaque canvas behind a frame whose scheme differs).
  const scheme = getComputedStyle(document.body).colorScheme || 'normal';
  return `
    :root { color-scheme: ${scheme}; }
    html, body { margin: 0; padding: 0; background: transparent; }
    body > :first-child { margin-top: 4px; }
    body > :last-child { margin-bottom: 4px; }
    body {
      color: ${v('--jp-content-font-color1', '#000')};
      font-family: ${v('--jp-content-font-family', 'sans-serif')};
      font-size: ${v('--jp-content-font-size1', '14px')};
      line-height: 1.5; overflow-wrap: anywhere;
    }
    pre, code { font-family: ${v('--jp-code-font-family', 'monospace')}; }
    a { color: ${v('--jp-content-link-color', '#1976d2')}; }
    img, svg { max-width: 100%; }
  `;
}

/** The only script we add: report the content height to the parent. */
const SIZE_REPORTER = `(function () {
  function report() {
    parent.postMessage({ type: '${SIZE_MESSAGE}',
      height: document.documentElement.scrollHeight }, '*');
  }
  new ResizeObserver(report).observe(document.documentElement);
  window.addEventListener('load', report);
  report();
})();`;

function controlsCss(): string {
  return widgetCss({
    border: cssVar('--jp-border-color1', '#bdbdbd'),
    background: cssVar('--jp-layout-color1', 'white'),
    accent: cssVar('--jp-brand-color1', '#1976d2'),
    muted: cssVar('--jp-ui-font-color2', '#616161')
  });
}

/** How to render an output. */
export interface RenderOptions {
  /** Where frames with marimo UI elements get and send their values. */
  widgets?: WidgetHost;
  /**
   * The height of the frame this one replaces. A new frame starts there rather
   * than at 0 px until its content reports its size: collapsing for a moment
   * would make the notebook jump under the pointer while someone clicks.
   */
  startHeight?: string;
}

function sandboxedFrame(
  html: string,
  { widgets, startHeight }: RenderOptions
): HTMLIFrameElement {
  listenForSizes();
  const frame = document.createElement('iframe');
  frame.className = 'jp-MarimoCollab-outputFrame';
  // allow-scripts without allow-same-origin: scripts run in an opaque origin.
  frame.setAttribute('sandbox', 'allow-scripts');
  frame.setAttribute('referrerpolicy', 'no-referrer');
  frame.style.height = startHeight || '0px';
  // The runtime goes before the size reporter: upgraded controls change the height.
  const interactive = widgets && html.includes('<marimo-ui-element');
  const runtime = interactive ? `<script>${widgetScript(widgets.frameConfig())}</script>` : '';
  const css = interactive ? themeCss() + controlsCss() : themeCss();
  frame.srcdoc =
    `<!doctype html><html><head><meta charset="utf-8">` +
    `<style>${css}</style></head><body>${html}` +
    `${runtime}<script>${SIZE_REPORTER}</script></body></html>`;
  if (interactive) {
    widgets.register(frame, html);
  }
  return frame;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, ch => `&#${ch.charCodeAt(0)};`);
}

function plainText(text: string, className: string): HTMLElement {
  const pre = document.createElement('pre');
  pre.className = className;
  pre.textContent = text;
  return pre;
}

/** marimo errors: a list of {type, msg, ...}; show their messages as text. */
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

/**
 * One marimo CellOutput as DOM; null when there is nothing to show. With
 * `widgets`, marimo UI elements in HTML become working controls.
 */
export function renderOutput(output: CellOutput, options: RenderOptions = {}): HTMLElement | null {
  const { mimetype = 'text/plain', data } = output;
  if (data === undefined || data === null || data === '') {
    return null;
  }
  const isError = output.channel === 'marimo-error' || mimetype.includes('error');
  if (mimetype === 'application/vnd.marimo+error') {
    return plainText(errorText(data), 'jp-MarimoCollab-outputError');
  }
  if (typeof data !== 'string') {
    return plainText(JSON.stringify(data, null, 2), 'jp-MarimoCollab-outputText');
  }
  if (mimetype === 'text/plain') {
    const stream = output.channel === 'stderr' ? 'jp-MarimoCollab-stderr' : '';
    return plainText(data, `jp-MarimoCollab-outputText ${stream}`.trim());
  }
  if (mimetype.startsWith('image/')) {
    // marimo sends images as data URLs; an <img> in the sandbox keeps SVG inert.
    return sandboxedFrame(`<img src="${escapeHtml(data)}" alt="">`, {
      startHeight: options.startHeight
    });
  }
  if (
    mimetype === 'text/html' ||
    mimetype === 'text/markdown' ||
    mimetype === 'application/vnd.marimo+traceback'
  ) {
    const frame = sandboxedFrame(data, options);
    frame.classList.toggle('jp-mod-error', isError);
    return frame;
  }
  return plainText(data, 'jp-MarimoCollab-outputText');
}

/** A cell's output and console, under its editor. */
export class CellOutputArea {
  readonly node: HTMLElement;

  constructor() {
    this.node = document.createElement('div');
    this.node.className = 'jp-MarimoCollab-outputArea';
    this._output = document.createElement('div');
    this._output.className = 'jp-MarimoCollab-output';
    this._console = document.createElement('div');
    this._console.className = 'jp-MarimoCollab-console';
    this.node.append(this._output, this._console);
    this.setStatus('idle');
  }

  /** Where frames with marimo UI elements get and send their values. */
  useWidgets(widgets: WidgetHost): void {
    this._widgets = widgets;
  }

  /** queued, running, idle, stale, ... as marimo reports it. */
  setStatus(status: string): void {
    this.node.dataset.runStatus = status;
  }

  /**
   * Apply a snapshot entry or a `cell-op`. As in marimo, a null or missing
   * field means "unchanged"; a console list replaces (often [] to clear) and
   * a single console item appends.
   */
  apply(state: CellOutputState | Record<string, unknown>): void {
    const output = state.output as CellOutput | null | undefined;
    if (output) {
      this._setOutput(output);
    }
    const console = state.console;
    if (Array.isArray(console)) {
      this._release(this._console);
      this._console.replaceChildren();
      this._consoleItems = [];
      console.forEach(item => this._appendConsole(item as CellOutput));
    } else if (console && typeof console === 'object') {
      this._appendConsole(console as CellOutput);
    }
    if (typeof state.status === 'string') {
      this.setStatus(state.status);
    }
  }

  clear(): void {
    this._lastOutput = null;
    this._consoleItems = [];
    this._release(this._output);
    this._release(this._console);
    this._output.replaceChildren();
    this._console.replaceChildren();
    this.setStatus('idle');
  }

  /** Render again (the theme changed: frames carry the theme's colours). */
  rerender(): void {
    if (this._lastOutput) {
      this._setOutput(this._lastOutput);
    }
    const items = this._consoleItems;
    this._consoleItems = [];
    this._release(this._console);
    this._console.replaceChildren();
    items.forEach(item => this._appendConsole(item));
  }

  private _setOutput(output: CellOutput): void {
    this._lastOutput = output;
    const previous = this._output.querySelector<HTMLIFrameElement>(
      ':scope > iframe.jp-MarimoCollab-outputFrame'
    );
    const node = renderOutput(output, {
      widgets: this._widgets,
      startHeight: previous?.style.height
    });
    this._release(this._output);
    this._output.replaceChildren(...(node ? [node] : []));
  }

  /** Frames about to be replaced stop receiving UI values. */
  private _release(container: HTMLElement): void {
    if (this._widgets) {
      const widgets = this._widgets;
      container
        .querySelectorAll<HTMLIFrameElement>('iframe.jp-MarimoCollab-outputFrame')
        .forEach(frame => widgets.release(frame));
    }
  }

  private _appendConsole(output: CellOutput): void {
    this._consoleItems.push(output);
    const node = renderOutput(output, { widgets: this._widgets });
    if (node) {
      this._console.appendChild(node);
    }
  }

  private _output: HTMLElement;
  private _console: HTMLElement;
  private _lastOutput: CellOutput | null = null;
  private _consoleItems: CellOutput[] = [];
  private _widgets: WidgetHost | undefined;
}
