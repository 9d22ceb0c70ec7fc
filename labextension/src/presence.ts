/**
 * Who else is here: the peers of the room with their server-stamped identity,
 * their avatars, and their cursors and selections drawn in each cell.
 */
import {
  EditorState,
  Extension,
  StateEffect,
  StateField
} from '@codemirror/state';
import { Decoration, DecorationSet, EditorView, WidgetType } from '@codemirror/view';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { CursorPosition, PeerInfo, User } from './protocol';

const PALETTE_SIZE = 7;

/** A stable colour for a user: theirs when the server gives one, else one of JupyterLab's. */
export function userColor(user: User): string {
  if (user.color) {
    return user.color;
  }
  let hash = 0;
  for (const char of user.username) {
    hash = (hash * 31 + char.charCodeAt(0)) | 0;
  }
  return `var(--jp-collaborator-color${(Math.abs(hash) % PALETTE_SIZE) + 1})`;
}

export function displayName(user: User): string {
  return user.display_name || user.name || user.username;
}

export function initials(user: User): string {
  if (user.initials) {
    return user.initials;
  }
  const words = displayName(user).split(/[\s._-]+/).filter(Boolean);
  return words
    .slice(0, 2)
    .map(word => word[0].toUpperCase())
    .join('');
}

/** The peers of the room, as the server announces them. */
export class PresenceModel {
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted with the peer whose cursor moved and the cells it left and entered. */
  get cursorMoved(): ISignal<this, { peer: PeerInfo; cells: string[] }> {
    return this._cursorMoved;
  }

  get self(): PeerInfo | null {
    return this._self;
  }

  /** Everyone but this client. */
  get others(): PeerInfo[] {
    return [...this._peers.values()].filter(
      peer => peer.peer_id !== this._self?.peer_id
    );
  }

  /** The collaborator whose cursor this client follows, if any. */
  get following(): string | null {
    return this._following;
  }

  set following(peerId: string | null) {
    this._following = peerId;
    this._changed.emit();
  }

  peer(peerId: string): PeerInfo | undefined {
    return this._peers.get(peerId);
  }

  reset(self: PeerInfo, peers: PeerInfo[]): void {
    this._self = self;
    this._peers = new Map(peers.map(peer => [peer.peer_id, peer]));
    this._peers.set(self.peer_id, self);
    if (this._following && !this._peers.has(this._following)) {
      this._following = null;
    }
    this._changed.emit();
  }

  /** A `presence` event: join, leave, or a changed role. */
  update(event: 'join' | 'leave' | 'update', peer: PeerInfo): void {
    const before = this._peers.get(peer.peer_id)?.cursor?.document_id;
    if (event === 'leave') {
      this._peers.delete(peer.peer_id);
      if (this._following === peer.peer_id) {
        this._following = null;
      }
    } else {
      this._peers.set(peer.peer_id, peer);
      if (peer.peer_id === this._self?.peer_id) {
        this._self = peer;
      }
    }
    this._changed.emit();
    const cells = [before, peer.cursor?.document_id].filter(
      (id): id is string => !!id
    );
    if (cells.length) {
      this._cursorMoved.emit({ peer, cells });
    }
  }

  moveCursor(peerId: string, cursor: CursorPosition): void {
    const peer = this._peers.get(peerId);
    if (!peer) {
      return;
    }
    const before = peer.cursor?.document_id;
    peer.cursor = cursor;
    const cells = before && before !== cursor.document_id ? [before] : [];
    this._cursorMoved.emit({ peer, cells: [...cells, cursor.document_id] });
  }

  /** Remote cursors that sit in one cell. */
  cursorsIn(cellId: string): RemoteCursor[] {
    return this.others
      .filter(peer => peer.cursor?.document_id === cellId)
      .map(peer => ({
        peerId: peer.peer_id,
        username: peer.user.username,
        name: displayName(peer.user),
        color: userColor(peer.user),
        version: peer.cursor!.version,
        anchor: peer.cursor!.anchor,
        head: peer.cursor!.head
      }));
  }

  private _self: PeerInfo | null = null;
  private _peers = new Map<string, PeerInfo>();
  private _following: string | null = null;
  private _changed = new Signal<this, void>(this);
  private _cursorMoved = new Signal<this, { peer: PeerInfo; cells: string[] }>(
    this
  );
}

// ---- remote cursors inside one editor ------------------------------------------

export interface RemoteCursor {
  peerId: string;
  username: string;
  name: string;
  color: string;
  /** The server version the positions refer to. */
  version: number;
  anchor: number;
  head: number;
}

/** Replace the remote cursors shown in an editor. */
export const setRemoteCursors = StateEffect.define<RemoteCursor[]>();

class CaretWidget extends WidgetType {
  /** `onFirstLine`: the label cannot go above (the editor clips it), so it sits beside. */
  constructor(
    readonly cursor: RemoteCursor,
    readonly onFirstLine: boolean
  ) {
    super();
  }

  override eq(other: CaretWidget): boolean {
    const a = this.cursor;
    const b = other.cursor;
    return (
      a.peerId === b.peerId &&
      a.name === b.name &&
      a.color === b.color &&
      this.onFirstLine === other.onFirstLine
    );
  }

  toDOM(): HTMLElement {
    const caret = document.createElement('span');
    caret.className = 'jp-MarimoCollab-remoteCaret';
    caret.classList.toggle('jp-mod-firstLine', this.onFirstLine);
    caret.dataset.remotePeer = this.cursor.peerId;
    caret.dataset.remoteUsername = this.cursor.username;
    caret.style.borderColor = this.cursor.color;
    const label = document.createElement('span');
    label.className = 'jp-MarimoCollab-remoteLabel';
    label.textContent = this.cursor.name;
    label.style.backgroundColor = this.cursor.color;
    caret.appendChild(label);
    return caret;
  }

  override ignoreEvent(): boolean {
    return true;
  }
}

function clamp(pos: number, state: EditorState): number {
  return Math.max(0, Math.min(pos, state.doc.length));
}

function decorate(cursors: RemoteCursor[], state: EditorState): DecorationSet {
  const ranges: { from: number; to: number; deco: Decoration }[] = [];
  for (const cursor of cursors) {
    const anchor = clamp(cursor.anchor, state);
    const head = clamp(cursor.head, state);
    if (anchor !== head) {
      ranges.push({
        from: Math.min(anchor, head),
        to: Math.max(anchor, head),
        deco: Decoration.mark({
          class: 'jp-MarimoCollab-remoteSelection',
          attributes: {
            style: `background-color: color-mix(in srgb, ${cursor.color} 25%, transparent)`,
            'data-remote-selection': cursor.peerId
          }
        })
      });
    }
    ranges.push({
      from: head,
      to: head,
      deco: Decoration.widget({
        widget: new CaretWidget(cursor, state.doc.lineAt(head).number === 1),
        side: 1
      })
    });
  }
  return Decoration.set(
    ranges.map(({ from, to, deco }) => deco.range(from, to)),
    true // let CodeMirror sort by position and side
  );
}

interface CursorFieldValue {
  cursors: RemoteCursor[];
  decorations: DecorationSet;
}

/**
 * Remote cursors as editor state: positions follow local and remote edits
 * (mapped through each transaction) until the peer reports a new position.
 */
const remoteCursorField = StateField.define<CursorFieldValue>({
  create: () => ({ cursors: [], decorations: Decoration.none }),
  update(value, tr) {
    let cursors = value.cursors;
    if (tr.docChanged) {
      cursors = cursors.map(cursor => ({
        ...cursor,
        anchor: tr.changes.mapPos(clamp(cursor.anchor, tr.startState)),
        head: tr.changes.mapPos(clamp(cursor.head, tr.startState))
      }));
    }
    for (const effect of tr.effects) {
      if (effect.is(setRemoteCursors)) {
        cursors = effect.value;
      }
    }
    if (cursors === value.cursors) {
      return value;
    }
    return { cursors, decorations: decorate(cursors, tr.state) };
  },
  provide: field => EditorView.decorations.from(field, value => value.decorations)
});

export function remoteCursors(): Extension {
  return remoteCursorField;
}

// ---- avatars -------------------------------------------------------------------

/**
 * The avatars of everyone in the room, top left. Clicking a collaborator
 * follows them (jumps to where they work); clicking again stops.
 */
export class AvatarBar extends Widget {
  constructor(private readonly _model: PresenceModel) {
    super();
    this.addClass('jp-MarimoCollab-avatars');
    this.node.setAttribute('role', 'list');
    this.node.setAttribute('aria-label', 'People in this notebook');
    _model.changed.connect(this._render, this);
    this._render();
  }

  private _render(): void {
    const self = this._model.self;
    const peers = self ? [self, ...this._model.others] : this._model.others;
    this.node.replaceChildren(
      ...peers.map(peer => this._avatar(peer, peer === self))
    );
  }

  private _avatar(peer: PeerInfo, isSelf: boolean): HTMLElement {
    const { user } = peer;
    const button = document.createElement('button');
    button.className = 'jp-MarimoCollab-avatar';
    button.setAttribute('role', 'listitem');
    button.dataset.peerUsername = user.username;
    button.dataset.peerId = peer.peer_id;
    button.dataset.peerRole = peer.role;
    button.style.backgroundColor = userColor(user);
    const following = this._model.following === peer.peer_id;
    button.classList.toggle('jp-mod-following', following);
    const who = `${displayName(user)}${isSelf ? ' (you)' : ''} · ${peer.role}`;
    button.title = isSelf
      ? who
      : `${who}\n${following ? 'Click to stop following' : 'Click to follow'}`;
    button.setAttribute('aria-label', button.title);
    if (user.avatar_url) {
      const img = document.createElement('img');
      img.src = user.avatar_url;
      img.alt = '';
      button.appendChild(img);
    } else {
      button.textContent = initials(user);
    }
    if (isSelf) {
      button.disabled = true;
      button.classList.add('jp-mod-self');
    } else {
      button.onclick = () => {
        this._model.following = following ? null : peer.peer_id;
      };
    }
    return button;
  }
}
