/**
 * The page's side of the widgets: which output frames show which marimo UI
 * elements, the room's current UI values, and the messages between them.
 *
 * A user's change arrives from a frame as a postMessage. It is obeyed only
 * from one of our own frames (event.source is that frame's window), for an
 * element in that frame's output HTML, in a known shape, and only when this
 * person is a runner; then it goes to the server as `set_ui_value` and to
 * the other frames here showing that element. Values from elsewhere (the
 * server's echo of another peer, the join snapshot) go into every frame
 * showing the element, so all participants' controls follow.
 */
import { IDisposable } from '@lumino/disposable';

import {
  frameConfig,
  FrameConfig,
  isReady,
  parseSetUiValue,
  UI_READ_ONLY,
  UI_VALUE,
  uiElementsIn
} from './protocol';

/** What output areas need from the bridge to build a widget frame. */
export interface WidgetHost {
  /** The config to serialize into a new frame's runtime. */
  frameConfig(): FrameConfig;
  /** A frame now shows the output `html`. */
  register(frame: HTMLIFrameElement, html: string): void;
  /** The frame was replaced or removed. */
  release(frame: HTMLIFrameElement): void;
}

export interface WidgetBridgeOptions {
  /** Whether this person may set UI values now (the runner role). */
  canSet(): boolean;
  /** Send a value to the server (`set_ui_value`). */
  send(objectId: string, value: unknown): void;
}

interface FrameEntry {
  frame: HTMLIFrameElement;
  /** object-id → random-id of the elements in this frame's output. */
  elements: Map<string, string>;
}

interface StoredValue {
  value: unknown;
  /** The element instance the value belongs to (null: the next one shown). */
  randomId: string | null;
}

export class WidgetBridge implements WidgetHost, IDisposable {
  constructor(private readonly _options: WidgetBridgeOptions) {
    window.addEventListener('message', this._onMessage);
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (!this._disposed) {
      this._disposed = true;
      window.removeEventListener('message', this._onMessage);
      this._frames = [];
    }
  }

  frameConfig(): FrameConfig {
    return frameConfig(!this._options.canSet());
  }

  register(frame: HTMLIFrameElement, html: string): void {
    const elements = uiElementsIn(html);
    elements.forEach((randomId, objectId) => {
      const stored = this._values.get(objectId);
      if (stored && stored.randomId !== null && stored.randomId !== randomId) {
        // Created again (its cell ran): back to its initial value, as in the kernel.
        this._values.delete(objectId);
      } else if (stored) {
        stored.randomId = randomId;
      }
      this._shown.set(objectId, randomId);
    });
    this._frames.push({ frame, elements });
  }

  release(frame: HTMLIFrameElement): void {
    this._frames = this._frames.filter(entry => entry.frame !== frame);
  }

  /** The join snapshot's `ui_values`: they replace what we knew. */
  applySnapshot(values: Record<string, unknown>): void {
    this._values.clear();
    for (const [objectId, value] of Object.entries(values)) {
      this._store(objectId, value);
      this._forward(objectId, value, null);
    }
  }

  /** Another peer set a value (the server's `send-ui-element-message` echo). */
  applyRemote(objectId: string, value: unknown): void {
    this._store(objectId, value);
    this._forward(objectId, value, null);
  }

  /** The role changed: controls become usable or read-only. */
  roleChanged(): void {
    const message = { type: UI_READ_ONLY, readOnly: !this._options.canSet() };
    this._frames.forEach(entry => post(entry.frame, message));
  }

  private _store(objectId: string, value: unknown): void {
    this._values.set(objectId, { value, randomId: this._shown.get(objectId) ?? null });
  }

  private _forward(objectId: string, value: unknown, except: FrameEntry | null): void {
    for (const entry of this._frames) {
      if (entry !== except && entry.elements.has(objectId)) {
        post(entry.frame, { type: UI_VALUE, objectId, value });
      }
    }
  }

  /** Arrow: added and removed as the window's listener. */
  private readonly _onMessage = (event: MessageEvent): void => {
    const source = event.source;
    const entry = source
      ? this._frames.find(candidate => candidate.frame.contentWindow === source)
      : undefined;
    if (!entry) {
      return; // not a frame of this notebook
    }
    if (isReady(event.data)) {
      this._sendState(entry);
      return;
    }
    const message = parseSetUiValue(event.data);
    if (!message || !entry.elements.has(message.objectId)) {
      return;
    }
    if (!this._options.canSet()) {
      this._sendState(entry); // put the controls back as they were
      return;
    }
    this._store(message.objectId, message.value);
    this._forward(message.objectId, message.value, entry);
    this._options.send(message.objectId, message.value);
  };

  /** A frame just started (or went astray): tell it everything it shows. */
  private _sendState(entry: FrameEntry): void {
    post(entry.frame, { type: UI_READ_ONLY, readOnly: !this._options.canSet() });
    entry.elements.forEach((_, objectId) => {
      const stored = this._values.get(objectId);
      if (stored) {
        post(entry.frame, { type: UI_VALUE, objectId, value: stored.value });
      }
    });
  }

  private _frames: FrameEntry[] = [];
  private _values = new Map<string, StoredValue>();
  /** object-id → random-id of the element most recently rendered. */
  private _shown = new Map<string, string>();
  private _disposed = false;
}

function post(frame: HTMLIFrameElement, message: unknown): void {
  // '*': a sandboxed frame's origin is opaque ("null") and cannot be named.
  frame.contentWindow?.postMessage(message, '*');
}
