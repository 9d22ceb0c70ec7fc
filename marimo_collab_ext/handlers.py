"""The WebSocket endpoint: authenticate, parse, authorize each message, dispatch to the room."""

from __future__ import annotations

import asyncio
import json
import math
import struct
import time
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol13

from .auth.identity import IdentityUnavailable, agent_identity, identity_of, refresh_identity
from .auth.recheck import RoleWatcher
from .auth.roles import Role, RolePolicy, authorize_message, is_owner, resolve_role
from .room.errors import BadRequest, Internal, ProtocolError, RateLimited
from .room.flow import OWNER_KEY, Account, Overflow, TokenBucket
from .room.manager import normalize_path
from .room.presence import Peer
from .room.room import Room, encode

# Requests answered with a `response`; `cursor` is fire-and-forget (docs/protocol.md).
REQUESTS = {"join", "change", "pull", "cells", "heartbeat", "save", "run", "set_ui_value",
            "interrupt", "restart_kernel", "stdin", "function_call", "set_model_value",
            "history", "cell_history", "blame", "suggest", "accept_suggestion",
            "reject_suggestion", "restore_notebook"}
# Close codes of connection budgets (docs/protocol.md, "Close codes").
TOO_SLOW = 4429
FLOODING = 1008  # policy violation: far past the rate limit, seconds on end (flow.Overflow)
# How long a socket closed for an oversized frame keeps reading (and discarding) the rest of
# it, so the peer gets the 1009 close frame instead of a connection reset.
OVERSIZE_LINGER = 5.0

# Frames at least this large are queued as the caller's bytes, not a copy joined to the
# header: a broadcast's payload is then held once however many peers still wait for it.
SHARED_PAYLOAD = 64 * 1024

# Requests that wait on the kernel or the disk run beside the socket's message loop.
BACKGROUND = {"save", "run", "set_ui_value", "interrupt", "restart_kernel", "stdin",
              "set_model_value"}


class CollabSocketHandler(WebSocketMixin, JupyterHandler, WebSocketHandler):
    """One peer in one room. Small `on_<type>` methods; the room does the work."""

    auth_resource = "contents"
    room: Room | None = None
    peer: Peer | None = None
    role_cap: Role = Role.RUNNER  # the role asked for in `join`

    @property
    def app(self):
        return self.settings["marimo_collab"]

    @property
    def max_message_size(self) -> int:
        return self.app.max_message_bytes

    def skip_check_origin(self) -> bool:
        # jupyter_server lets any token-authenticated request skip the Origin check, `?token=`
        # in a page's URL included; here every upgrade that names an Origin is checked
        # (docs/security.md, "Who may connect"). Scripts send no Origin.
        return False

    def get_websocket_protocol(self) -> WebSocketProtocol13 | None:
        protocol = super().get_websocket_protocol()
        if type(protocol) is WebSocketProtocol13:
            protocol.__class__ = _LingeringProtocol
        return protocol

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        try:
            self.notebook_path = normalize_path(self.get_argument("path", ""))
        except ProtocolError as exc:
            raise web.HTTPError(400, exc.message) from None
        self.policy = RolePolicy.from_app(self.app)
        try:  # under JupyterHub, the hub's answer now, not HubAuth's copy of up to 300 s ago
            user = await refresh_identity(self, self.current_user)
        except IdentityUnavailable:
            raise web.HTTPError(503, "JupyterHub could not confirm your access") from None
        self.role = await resolve_role(self, user, self.notebook_path, self.policy)
        self.fresh_user = user
        if self.role is None:
            raise web.HTTPError(403, "no read access to this notebook")
        # One budget per person; the owner's many token identities are one person.
        self.flow_key = OWNER_KEY if is_owner(self, user, self.policy) else f"user {user.username}"
        if not self.app.flow.may_connect(self.flow_key):  # open() follows without a yield
            raise web.HTTPError(429, f"too many connections: at most"
                                f" {self.app.max_connections_per_user} per user")
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self.set_nodelay(True)  # Nagle's algorithm costs tens of ms per edit (DESIGN.md)
        self.bucket = TokenBucket(self.app.rate_limit, self.app.rate_burst)
        self.overflow = Overflow(self.app.rate_limit)
        self.account: Account = self.app.flow.attach(self.flow_key, self)
        self.role_watcher = RoleWatcher(self, self.fresh_user, self.notebook_path, self.policy,
                                        self.role, on_change=self._role_changed,
                                        on_revoked=self.close)
        self.role_watcher.start()
        self.background: set[asyncio.Task] = set()

    # ---- the room's view of this socket (room.presence.Connection) -------------------------

    def send(self, text: str | bytes) -> None:
        connection = self.ws_connection
        if connection is None or connection.is_closing() or self.account.dropped:
            return
        data = text.encode() if isinstance(text, str) else text
        self._count_queued()
        for slow in self.app.flow.admit(self.account, len(data)):
            slow.connection.drop_too_slow()
        if self.account.dropped:
            return
        write_frame = getattr(connection, "_write_frame", None)
        if write_frame is None:  # a tornado without it: the public, slower path
            try:
                written = self.write_message(data.decode())
            except WebSocketClosedError:
                return
        else:
            # write_message wraps every frame in an asyncio Task so a caller may await errors;
            # a broadcast awaits nothing, and the Task was a third of the server's CPU per edit
            # (docs/benchmarks.md). tornado 6's frame writer: fin, text opcode, payload.
            try:
                written = (write_frame(True, 0x1, data) if len(data) < SHARED_PAYLOAD
                           else _write_shared(connection, data))
            except StreamClosedError:
                return
        self._count_queued()
        written.add_done_callback(self._sent)

    def _count_queued(self) -> None:
        """Tell the flow budget how many bytes tornado still holds for this socket."""
        stream = getattr(self.ws_connection, "stream", None)
        done = getattr(stream, "_total_write_done_index", None)
        if done is not None and not stream.closed():
            self.app.flow.update(self.account, stream._total_write_index - done)

    def _sent(self, written) -> None:
        if not written.cancelled():
            written.exception()  # a peer gone mid-write is its close handler's business
        self._count_queued()

    def drop_too_slow(self) -> None:
        """The peer reads too slowly to keep (docs/protocol.md, "Close codes", 4429).

        The stream is torn down at once: a close frame would queue behind the backlog this
        frees, so a peer that stopped reading sees the connection drop.
        """
        connection = self.ws_connection
        self.log.warning("marimo-collab: dropping a connection of %s that stopped reading"
                         " (%s)", self.flow_key, self.notebook_path)
        if connection is not None and not connection.is_closing():
            connection.close(TOO_SLOW, "too slow: the server stopped queueing messages for"
                             " this connection; reconnect")
        if connection is not None:
            connection._abort()

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if self.ws_connection is not None:
            super().close(code, reason)

    # ---- messages --------------------------------------------------------------------------

    async def on_message(self, raw: str | bytes) -> None:
        message_id = None
        try:
            if not self.bucket.take() or not self.account.user.bucket.take():
                if self.overflow.refuse():
                    self.close(FLOODING, "rate limit exceeded for seconds on end; slow down")
                    return
                raise RateLimited("too many messages; slow down")
            message = self._parse(raw)
            # An unusable id is answered as null (docs/protocol.md), never echoed back.
            message_id = message.get("id") if _usable_id(message.get("id")) else None
            kind = message["type"]
            if self.peer is not None:
                self.peer.last_seen = time.monotonic()
            if kind == "cursor":
                if self.peer is None:
                    raise BadRequest("send `join` first")
                await self._authorize(kind, message)
                self.room.cursor(self.peer, message)
                return
            if kind not in REQUESTS:
                raise BadRequest(f"unknown message type {kind!r}")
            if message_id is None:
                raise BadRequest("a request needs an `id` (a string or an integer)")
            if kind != "join" and self.peer is None:
                raise BadRequest("send `join` first")
            checked = await self._authorize(kind, message)
            if kind in BACKGROUND:
                task = asyncio.ensure_future(self._answer(message_id, kind, message, checked))
                self.background.add(task)
                task.add_done_callback(self.background.discard)
                return
            await self._answer(message_id, kind, message, checked)
        except ProtocolError as exc:
            self._reply_error(message_id, exc)

    async def _answer(self, message_id: object, kind: str, message: dict,
                      checked: dict | None = None) -> None:
        try:
            result = await getattr(self, f"on_{kind}")(message, **(checked or {}))
        except ProtocolError as exc:
            self._reply_error(message_id, exc)
            return
        except Exception:
            self.log.exception("marimo-collab: %s failed", kind)
            self._reply_error(message_id, Internal(f"the server failed to handle {kind!r}"))
            return
        self.send(encode({"type": "response", "in_reply": message_id, "status": "ok",
                          **(result or {})}))

    def _reply_error(self, message_id: object, exc: ProtocolError) -> None:
        self.send(encode({"type": "response", "in_reply": message_id, "status": "error",
                          "error": exc.to_wire(), **exc.extra}))

    def _parse(self, raw: str | bytes) -> dict:
        if isinstance(raw, bytes):
            raise BadRequest("binary frames are not part of the protocol")
        try:
            message = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
            raise BadRequest("the frame is not valid JSON") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise BadRequest("a message is a JSON object with a string `type`")
        return message

    async def _authorize(self, kind: str, message: dict) -> dict:
        """One Authorizer call per message, in one place (docs/protocol.md, "Roles").

        Returns what was checked beyond the type, for the handler method: the role of a
        `function_call` depends on the element and function it calls.
        """
        function = self.room.kernel.called_function(message) if kind == "function_call" else None
        await authorize_message(self, self.role_watcher.user, kind, self.notebook_path,
                                self.policy, current=self.role, function=function)
        return {"element": function[0]} if function is not None else {}

    # ---- one method per message type -------------------------------------------------------

    async def on_join(self, message: dict) -> dict:
        if self.peer is not None:
            raise BadRequest("already joined")
        peer_id = message.get("peer_id")
        if not isinstance(peer_id, str) or not 0 < len(peer_id) <= 128:
            raise BadRequest("`peer_id` must be a non-empty string")
        manager = self.app.room_manager
        room = await manager.get(self.notebook_path)
        existing = room.presence.peers.get(peer_id)
        user = identity_of(self.role_watcher.user)
        owner = is_owner(self, self.role_watcher.user, self.policy)
        asked = _asked_role(message.get("role"))
        # Jupyter names every token-authenticated connection anew, yet all are the owner.
        if existing is not None and existing.user.get("username") != user["username"] and not (
            owner and existing.owner
        ):
            raise BadRequest("that `peer_id` belongs to someone else")
        versions = message.get("versions")
        resume = message.get("session") == room.epoch and isinstance(versions, dict)
        if message.get("agent") is True:
            user = agent_identity(user)
        self.room = room
        # A peer may ask for less than it is granted, never more (docs/protocol.md, "Agents and
        # narrowed roles"); re-checks keep the cap.
        self.role_cap = asked
        self.role = min(self.role, asked)
        self.peer = Peer(peer_id, user, self.role.wire_name, self, owner=owner)
        room.add_peer(self.peer)
        self.app.grant_store.record_join(self.notebook_path, user["username"], self.peer.role)
        asyncio.ensure_future(room.kernel.start_if_configured(self.peer))
        return {
            "session": room.epoch,
            "self": {"peer_id": peer_id, "user": user, "role": self.peer.role},
            "peers": [p.describe() for p in room.presence.peers.values() if p is not self.peer],
            "notebook": {"structure_version": room.structure.version,
                         "cells": room.describe_cells(versions if resume else None),
                         "app": room.notebook.app},
            "kernel": room.kernel.snapshot(),
            "file": {"saved": not room.is_dirty(), "missing": room.saver.file_missing},
            "suggestions": room.suggestions.describe(),
        }

    async def on_change(self, message: dict) -> dict:
        version = self.room.change(self.peer, message.get("document_id"),
                                   message.get("version"), message.get("updates"))
        return {"version": version}

    async def on_pull(self, message: dict) -> dict:
        return {"changes": self.room.pull(message.get("document_id"), message.get("version"))}

    async def on_history(self, message: dict) -> dict:
        return {"history": self.room.history(message.get("cell_id"), message.get("since"),
                                             message.get("limit"))}

    async def on_cell_history(self, message: dict) -> dict:
        return await self.room.cell_history(message.get("cell_id"), message.get("limit"),
                                            message.get("version"))

    async def on_blame(self, message: dict) -> dict:
        return await self.room.blame(message.get("cell_id"))

    async def on_suggest(self, message: dict) -> dict:
        return {"suggestion": self.room.suggest(self.peer, message)}

    async def on_accept_suggestion(self, message: dict) -> dict:
        return self.room.resolve_suggestion(self.peer, message.get("suggestion_id"), True)

    async def on_reject_suggestion(self, message: dict) -> dict:
        self.room.resolve_suggestion(self.peer, message.get("suggestion_id"), False)
        return {}

    async def on_restore_notebook(self, message: dict) -> dict:
        return await self.room.restore_notebook(self.peer, message.get("at"))

    async def on_cells(self, message: dict) -> dict:
        version, created = self.room.cells(self.peer, message.get("ops"))
        return {"structure_version": version, "cell_ids": created}

    async def on_heartbeat(self, message: dict) -> dict:
        return {}

    async def on_save(self, message: dict) -> dict:
        digest = await self.room.saver.save()
        return {"hash": digest, "structure_version": self.room.structure.version}

    async def on_run(self, message: dict) -> dict:
        await self.room.kernel.run(self.peer, message.get("cell_ids"))
        return {}

    async def on_set_ui_value(self, message: dict) -> dict:
        await self.room.kernel.set_ui_value(self.peer.peer_id, message.get("object_id"),
                                            message.get("value"))
        return {}

    async def on_function_call(self, message: dict, element: str) -> dict:
        await self.room.kernel.function_call(self.peer, message, element)
        return {"function_call_id": message["function_call_id"]}

    async def on_set_model_value(self, message: dict) -> dict:
        await self.room.kernel.set_model_value(self.peer.peer_id, message)
        return {}

    async def on_interrupt(self, message: dict) -> dict:
        await self.room.kernel.interrupt()
        return {}

    async def on_restart_kernel(self, message: dict) -> dict:
        await self.room.kernel.restart(self.peer)
        return {}

    async def on_stdin(self, message: dict) -> dict:
        await self.room.kernel.stdin(message.get("text"))
        return {}

    # ---- lifecycle -------------------------------------------------------------------------

    def _role_changed(self, role: Role, user) -> None:
        """A grant or downgrade found by the re-check: every peer sees the new role."""
        self.role = min(role, self.role_cap)
        if self.peer is not None and self.room is not None:
            self.room.set_role(self.peer, self.role.wire_name)

    def on_close(self) -> None:
        watcher = getattr(self, "role_watcher", None)
        if watcher is not None:
            watcher.stop()
        account = getattr(self, "account", None)
        if account is not None:
            self.app.flow.detach(account)
        super().on_close()
        if self.room is not None and self.peer is not None:
            self.room.remove_peer(self.peer.peer_id, self)


def _asked_role(value: object) -> Role:
    if value is None:
        return Role.RUNNER
    if not isinstance(value, str):
        raise BadRequest("`role` must be viewer, editor or runner")
    try:
        return Role.parse(value)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")  # Python accepts NaN and Infinity; JSON does not


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: echoed or relayed, it would go out as Infinity
        raise ValueError(f"{text} is out of range")
    return value


def _write_shared(connection: WebSocketProtocol13, data: bytes):
    """A text frame as tornado 6 writes it (server frames are unmasked), payload uncopied."""
    size = len(data)
    header = bytes([0x81]) + (struct.pack("!BH", 126, size) if size < 1 << 16
                              else struct.pack("!BQ", 127, size))
    connection.stream.write(header)
    return connection.stream.write(data)  # tornado keeps large writes as views


def _usable_id(value: object) -> bool:
    return (isinstance(value, str) and len(value) <= 256) or (
        isinstance(value, int) and not isinstance(value, bool))


class _LingeringProtocol(WebSocketProtocol13):
    """tornado's protocol, except after an oversized frame (close 1009).

    tornado sends the close frame and drops the socket while the peer is still sending that
    frame: the unread bytes make the kernel answer with a reset, and the peer usually loses the
    close frame with the code. Reading and discarding the rest for a while delivers it.
    """

    _too_big = False
    _lingering = False
    _drained = False

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if code == 1009:
            self._too_big = True
        super().close(code, reason)

    def _abort(self) -> None:
        # tornado calls this again as the frame loop ends; the socket stays until drained
        if self._too_big and not self._drained and self.stream is not None and (
                not self.stream.closed()):
            if not self._lingering:
                self._lingering = True
                self.client_terminated = self.server_terminated = True  # no more frames
                asyncio.ensure_future(self._discard_then_abort())
            return
        super()._abort()

    async def _discard_then_abort(self) -> None:
        deadline = time.monotonic() + OVERSIZE_LINGER
        try:
            while (left := deadline - time.monotonic()) > 0:
                await asyncio.wait_for(self.stream.read_bytes(1 << 16, partial=True), left)
        except (StreamClosedError, TimeoutError):
            pass
        finally:
            self._drained = True
            super()._abort()
