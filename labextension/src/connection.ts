/**
 * One WebSocket per open notebook (docs/protocol.md, "Endpoint and
 * authentication"): numbered requests with promised responses, server events,
 * automatic reconnection with exponential backoff, and a heartbeat.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { ProtocolError, Response, ServerEvent } from './protocol';

/** What the user sees: "connected", "reconnecting", or "offline". */
export type ConnectionStatus =
  | 'connecting'
  | 'connected'
  | 'reconnecting'
  | 'offline';

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 30_000;
/** After this many failed attempts in a row we call it "offline" (and keep trying). */
const ATTEMPTS_BEFORE_OFFLINE = 5;
const HEARTBEAT_EVERY_MS = 15_000;
/** A heartbeat unanswered this long means the socket is dead even if it looks open. */
const HEARTBEAT_TIMEOUT_MS = 10_000;

/** The collaboration socket URL for a notebook path relative to the server root. */
export function socketUrl(
  path: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  let url =
    URLExt.join(settings.wsUrl, 'api/marimo-collab/ws') +
    `?path=${encodeURIComponent(path)}`;
  // Browsers cannot set headers on a WebSocket: with a token in the page
  // config, the server accepts `?token=`; otherwise the login cookie is used.
  if (settings.token) {
    url += `&token=${encodeURIComponent(settings.token)}`;
  }
  return url;
}

interface Pending {
  resolve: (response: Response) => void;
  reject: (error: Error) => void;
}

export class NotebookConnection implements IDisposable {
  constructor(private readonly _url: string) {
    this._onOnline = () => this._retryNow();
  }

  /** Open the socket; connect `opened` first, since joining happens there. */
  start(): void {
    if (this._started || this._disposed) {
      return;
    }
    this._started = true;
    window.addEventListener('online', this._onOnline);
    this._open();
  }

  get status(): ConnectionStatus {
    return this._status;
  }

  /** Emitted on every status change. */
  get statusChanged(): ISignal<this, ConnectionStatus> {
    return this._statusChanged;
  }

  /** Emitted each time a socket opens (first connect and every reconnect): join then. */
  get opened(): ISignal<this, void> {
    return this._opened;
  }

  /** Messages the server sends without being asked. */
  get eventReceived(): ISignal<this, ServerEvent> {
    return this._eventReceived;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /**
   * Send a request and resolve with its `ok` response; reject with a
   * ProtocolError for an `error` response or when the socket drops first.
   */
  request(message: Record<string, unknown>): Promise<Response> {
    const socket = this._socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(
        new ProtocolError('disconnected', 'not connected to the server')
      );
    }
    const id = this._nextId++;
    return new Promise<Response>((resolve, reject) => {
      this._pending.set(id, { resolve, reject });
      socket.send(JSON.stringify({ ...message, id }));
    });
  }

  /** Fire-and-forget messages (cursor): dropped while disconnected. */
  notify(message: Record<string, unknown>): void {
    if (this._socket?.readyState === WebSocket.OPEN) {
      this._socket.send(JSON.stringify(message));
    }
  }

  /** Drop the current socket and connect again (e.g. after `stale` with `gone`). */
  reconnect(): void {
    if (this._socket) {
      this._drop(this._socket, 4001, 'client resync');
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    window.removeEventListener('online', this._onOnline);
    window.clearTimeout(this._retryTimer);
    window.clearInterval(this._heartbeatTimer);
    this._socket?.close(1000, 'notebook closed');
    this._socket = null;
    this._failPending();
    Signal.clearData(this);
  }

  private _open(): void {
    if (this._disposed) {
      return;
    }
    const socket = new WebSocket(this._url);
    this._socket = socket;
    socket.onopen = () => {
      this._attempts = 0;
      this._setStatus('connected');
      this._startHeartbeat();
      this._opened.emit();
    };
    socket.onmessage = event => this._onMessage(event.data);
    socket.onclose = () => this._drop(socket);
  }

  /**
   * Forget a socket and schedule a reconnect. Called directly (not only from
   * onclose) because a dead TCP link can take minutes to report its close.
   */
  private _drop(socket: WebSocket, code?: number, reason?: string): void {
    if (this._socket !== socket) {
      return;
    }
    this._socket = null;
    window.clearInterval(this._heartbeatTimer);
    if (code !== undefined) {
      socket.close(code, reason);
    }
    this._failPending();
    this._scheduleRetry();
  }

  private _onMessage(data: unknown): void {
    let message: unknown;
    try {
      message = JSON.parse(String(data));
    } catch {
      console.warn('marimo-collab: ignoring a frame that is not JSON');
      return;
    }
    if (!message || typeof message !== 'object') {
      return;
    }
    const frame = message as { type?: unknown };
    if (frame.type === 'response') {
      this._onResponse(frame as Response);
    } else if (typeof frame.type === 'string') {
      this._eventReceived.emit(frame as ServerEvent);
    }
  }

  private _onResponse(response: Response): void {
    const id = response.in_reply;
    const pending = typeof id === 'number' ? this._pending.get(id) : undefined;
    if (!pending) {
      if (response.status === 'error') {
        console.warn('marimo-collab: server error', response.error);
      }
      return;
    }
    this._pending.delete(id as number);
    if (response.status === 'ok') {
      pending.resolve(response);
    } else {
      const error = response.error ?? { code: 'internal' };
      pending.reject(
        new ProtocolError(
          error.code,
          error.message ?? error.code,
          error.gone === true
        )
      );
    }
  }

  private _failPending(): void {
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const { reject } of pending) {
      reject(new ProtocolError('disconnected', 'the connection dropped'));
    }
  }

  private _scheduleRetry(): void {
    if (this._disposed) {
      return;
    }
    this._attempts++;
    this._setStatus(
      this._attempts > ATTEMPTS_BEFORE_OFFLINE ? 'offline' : 'reconnecting'
    );
    const base = Math.min(
      MAX_RETRY_MS,
      FIRST_RETRY_MS * 2 ** (this._attempts - 1)
    );
    // Jitter keeps a room's peers from all reconnecting in the same instant.
    const delay = base / 2 + Math.random() * (base / 2);
    window.clearTimeout(this._retryTimer);
    this._retryTimer = window.setTimeout(() => this._open(), delay);
  }

  private _retryNow(): void {
    if (this._started && !this._disposed && !this._socket) {
      window.clearTimeout(this._retryTimer);
      this._open();
    }
  }

  private _startHeartbeat(): void {
    window.clearInterval(this._heartbeatTimer);
    this._heartbeatTimer = window.setInterval(() => {
      const socket = this._socket;
      if (!socket) {
        return;
      }
      const timeout = window.setTimeout(
        () => this._drop(socket, 4002, 'heartbeat timeout'),
        HEARTBEAT_TIMEOUT_MS
      );
      this.request({ type: 'heartbeat' })
        .catch(() => undefined)
        .finally(() => window.clearTimeout(timeout));
    }, HEARTBEAT_EVERY_MS);
  }

  private _setStatus(status: ConnectionStatus): void {
    if (status !== this._status) {
      this._status = status;
      this._statusChanged.emit(status);
    }
  }

  private _socket: WebSocket | null = null;
  private _status: ConnectionStatus = 'connecting';
  private _nextId = 1;
  private _pending = new Map<number, Pending>();
  private _attempts = 0;
  private _retryTimer = 0;
  private _heartbeatTimer = 0;
  private _disposed = false;
  private _started = false;
  private readonly _onOnline: () => void;
  private _statusChanged = new Signal<this, ConnectionStatus>(this);
  private _opened = new Signal<this, void>(this);
  private _eventReceived = new Signal<this, ServerEvent>(this);
}
