/**
 * Wire shapes of the marimo-collab protocol, version 1 (docs/protocol.md).
 * Only what this client sends or reads; the server may add fields.
 */

export type Role = 'viewer' | 'editor' | 'runner';

/** The identity the server authenticated; a client never sets it. */
export interface User {
  username: string;
  name?: string;
  display_name?: string;
  initials?: string | null;
  avatar_url?: string | null;
  color?: string | null;
}

export interface CursorPosition {
  document_id: string;
  version: number;
  anchor: number;
  head: number;
}

export interface PeerInfo {
  peer_id: string;
  user: User;
  role: Role;
  cursor: CursorPosition | null;
}

/** One update of a push: `changes` is ChangeSet JSON. */
export interface WireUpdate {
  clientID: string;
  changes: unknown;
}

/** One accepted push (a `change` broadcast, or one entry of a `pull`). */
export interface PushEntry {
  version: number;
  updates: WireUpdate[];
}

export interface CellSnapshot {
  id: string;
  name: string;
  config: Record<string, unknown>;
  version: number;
  /** The whole document, unless the server sent the missed pushes instead. */
  code?: string;
  /** On a resumed join: the pushes since `from_version`. */
  changes?: PushEntry[];
  from_version?: number;
}

/** marimo's CellOutput, as relayed from the kernel. */
export interface CellOutput {
  channel?: string;
  mimetype?: string;
  data?: unknown;
  timestamp?: number;
}

export interface CellOutputState {
  output?: CellOutput | null;
  console?: CellOutput[];
  status?: string;
}

export interface KernelSnapshot {
  status: string;
  outputs?: Record<string, CellOutputState>;
  ui_values?: Record<string, unknown>;
  /** anywidget models: model id → marimo's `model-lifecycle` open message data. */
  models?: Record<string, Record<string, unknown>>;
}

export interface JoinResult {
  session: string;
  self: PeerInfo;
  peers: PeerInfo[];
  notebook: {
    structure_version: number;
    cells: CellSnapshot[];
    app?: Record<string, unknown>;
  };
  kernel?: KernelSnapshot;
  /** Pending suggestions (docs/protocol.md, "Suggestions"). */
  suggestions?: Suggestion[];
}

export interface Suggestion {
  id: string;
  kind: 'edit' | 'cell';
  insert: string;
  author: {
    peer_id: string;
    username: string | null;
    display_name: string | null;
    agent: boolean;
  };
  at: number;
  /** kind edit: UTF-16 range of the cell's current text, and the text in it. */
  cell_id?: string;
  from?: number;
  to?: number;
  replaced?: string;
  /** kind cell: the cell it goes after (null: the top), and its name. */
  after?: string | null;
  name?: string;
}

/** One push of a cell's history (`cell_history`). */
export interface CellVersion {
  version: number;
  to_version: number;
  username: string | null;
  at: number;
  suggested_by: string | null;
  diff: string;
}

export interface CellHistory {
  cell_id: string;
  version: number;
  oldest_version: number;
  complete: boolean;
  versions: CellVersion[];
  code?: string;
}

/** Who last wrote a line (`blame`); null: before the kept history. */
export type BlameLine = {
  version: number;
  username: string | null;
  at: number;
  suggested_by: string | null;
} | null;

export type CellOp =
  | {
      op: 'create';
      cell_id?: string;
      after: string | null;
      code?: string;
      name?: string;
      config?: Record<string, unknown>;
    }
  | { op: 'delete'; cell_id: string }
  | { op: 'move'; cell_id: string; after: string | null }
  | { op: 'rename'; cell_id: string; name: string }
  | { op: 'config'; cell_id: string; config: Record<string, unknown> };

export interface ProtocolErrorBody {
  code: string;
  message?: string;
  gone?: boolean;
}

/** A `response` frame. Result fields sit beside `status`. */
export interface Response {
  type: 'response';
  in_reply: string | number | null;
  status: 'ok' | 'error';
  error?: ProtocolErrorBody;
  [field: string]: unknown;
}

/** Messages the server sends without being asked. */
export type ServerEvent =
  | ({ type: 'change'; document_id: string } & PushEntry)
  | {
      type: 'cells';
      structure_version: number;
      ops: CellOp[];
      peer_id: string;
    }
  | ({ type: 'cursor'; peer_id: string } & CursorPosition)
  | { type: 'presence'; event: 'join' | 'leave' | 'update'; peer: PeerInfo }
  | { type: 'saving' }
  | { type: 'saved'; hash: string; at: string }
  | {
      type: 'file_status';
      status: 'missing' | 'present' | 'unreadable' | 'merged' | string;
      message: string;
    }
  | { type: 'save_failed'; message: string }
  | { type: 'kernel'; op: string; data: Record<string, unknown> }
  | { type: 'kernel_status'; status: string; message?: string }
  | {
      type: 'suggestion';
      event: 'created' | 'accepted' | 'rejected' | 'outdated';
      suggestion: Suggestion;
      peer_id: string;
    };

/** A rejected request, carrying the server's error code. */
export class ProtocolError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly gone = false
  ) {
    super(message);
  }
}
