"""A CLI connection that stays joined: heartbeats, and reconnects with backoff when dropped.

The server drops a silent peer after its heartbeat timeout (docs/protocol.md, "Close codes").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ..client import CollabClient, CollabError

HEARTBEAT_SECONDS = 20  # well under the server's default 150 s heartbeat_timeout
MAX_BACKOFF = 15


class ConnectError(Exception):
    """Could not join: a message a user can act on (bad token, wrong URL, no such notebook)."""


async def open_client(server: str, path: str, token: str | None,
                      join_fields: dict | None = None) -> CollabClient:
    """Connect and join, turning handshake failures into ConnectError with a useful message."""
    try:
        return await CollabClient.connect(server, path, token=token, join_fields=join_fields)
    except InvalidStatus as exc:
        raise ConnectError(_describe_status(exc.response.status_code, server, path)) from None
    except CollabError as exc:
        raise ConnectError(f"the server refused to join {path}: {exc}") from None
    except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
        raise ConnectError(f"cannot reach {server}: {exc or type(exc).__name__}") from None


def _describe_status(status: int, server: str, path: str) -> str:
    if status in (401, 403):
        return (f"HTTP {status}: not allowed. Check the token (MARIMO_COLLAB_TOKEN,"
                " JUPYTERHUB_API_TOKEN, JUPYTER_TOKEN or --token-file) and that it may read"
                f" {path}")
    if status == 404:
        return (f"HTTP 404: no marimo-collab at {server} (is the extension enabled, and does"
                " --server include JupyterHub's /user/<name>/ prefix?)")
    return f"HTTP {status} from {server}"


class KeepAlive:
    """Heartbeats and reconnects for one client, until `stop()`.

    `on_lost()` runs when the socket drops, `on_rejoined(resumed)` after each successful re-join.
    """

    def __init__(self, client: CollabClient, out: Callable[[str], None],
                 on_lost: Callable[[], None] | None = None,
                 on_rejoined: Callable[[bool], None] | None = None) -> None:
        self.client = client
        self.out = out
        self.on_lost = on_lost or (lambda: None)
        self.on_rejoined = on_rejoined or (lambda resumed: None)
        self.connected = True
        self._tasks: list[asyncio.Task] = []

    def start(self) -> asyncio.Task:
        """Start; the returned task ends only with ConnectError, when access is gone for good."""
        reconnecting = asyncio.ensure_future(self._reconnect_forever())
        self._tasks = [asyncio.ensure_future(self._heartbeat()), reconnecting]
        return reconnecting

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            if self.connected:
                try:
                    await self.client.request({"type": "heartbeat"}, timeout=10)
                except (CollabError, ConnectionError, ConnectionClosed, asyncio.TimeoutError):
                    pass  # a dead socket shows in wait_closed(); the reconnect loop handles it

    async def _reconnect_forever(self) -> None:
        while True:
            await self.client.wait_closed()
            self.connected = False
            self.on_lost()
            self.out("disconnected; reconnecting")
            delay = 0.5
            while True:
                previous = self.client.session
                try:
                    await self.client.reconnect()
                except InvalidStatus as exc:
                    status = exc.response.status_code
                    if status in (401, 403, 404):
                        # Revoked token or access, or the server moved: retrying cannot help.
                        raise ConnectError(_describe_status(status, "the server", "the notebook")
                                           ) from None
                    self.out(f"reconnect failed (HTTP {status}); retrying in {delay:g} s")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_BACKOFF)
                    continue
                except (OSError, InvalidHandshake, CollabError, ConnectionError,
                        asyncio.TimeoutError) as exc:
                    self.out(f"reconnect failed ({type(exc).__name__}); retrying in {delay:g} s")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_BACKOFF)
                    continue
                resumed = self.client.session == previous
                self.connected = True
                self.out("reconnected" + (", caught up" if resumed else
                                          " to a new server session (history was lost)"))
                self.on_rejoined(resumed)
                break
