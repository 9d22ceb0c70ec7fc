"""Who is in a room: peers with server-stamped identity, role, cursor and liveness (pure)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol


class Connection(Protocol):
    """What the room needs of a peer's socket; the handler implements it."""

    def send(self, text: str | bytes) -> None: ...  # bytes: UTF-8, shared by the peers

    def close(self, code: int, reason: str) -> None: ...


@dataclass
class Peer:
    peer_id: str
    user: dict
    role: str
    connection: Connection
    cursor: dict | None = None
    last_seen: float = field(default_factory=time.monotonic)
    owner: bool = False  # the server's own user (auth.roles.is_owner)

    def describe(self) -> dict:
        """The peer as presence messages and `join` show it."""
        return {"peer_id": self.peer_id, "user": self.user, "role": self.role,
                "cursor": self.cursor}


class Presence:
    """The peers of one room, by peer id."""

    def __init__(self) -> None:
        self.peers: dict[str, Peer] = {}

    def __len__(self) -> int:
        return len(self.peers)

    def add(self, peer: Peer) -> Peer | None:
        """Add a peer; returns the one it replaces (same peer id reconnecting), if any."""
        previous = self.peers.get(peer.peer_id)
        self.peers[peer.peer_id] = peer
        return previous

    def remove(self, peer_id: str, connection: Connection) -> Peer | None:
        """Remove the peer if it is still on this connection (a reconnect may have replaced it)."""
        peer = self.peers.get(peer_id)
        if peer is None or peer.connection is not connection:
            return None
        del self.peers[peer_id]
        return peer

    def silent_since(self, deadline: float) -> list[Peer]:
        """Peers not heard from since `deadline` (monotonic seconds)."""
        return [p for p in self.peers.values() if p.last_seen < deadline]

    def forget_cursors_in(self, cell_ids: list[str]) -> None:
        """Drop cursors that point into deleted cells."""
        for peer in self.peers.values():
            if peer.cursor and peer.cursor.get("document_id") in cell_ids:
                peer.cursor = None
