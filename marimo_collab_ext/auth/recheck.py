"""Permission re-checks for open connections: revocations reach sockets within seconds.

docs/protocol.md "Roles": checked on every message, and changes reach open connections.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .identity import IdentityUnavailable, refresh_identity
from .roles import Role, RolePolicy, resolve_role

# WebSocket close code when a connection loses read access (4000-4999: application codes).
CLOSE_FORBIDDEN = 4403
REASON_REVOKED = "forbidden: read access to this notebook was revoked"
REASON_UNVERIFIED = "forbidden: permissions could not be re-checked with JupyterHub"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recheck:
    """One re-check's outcome: the refreshed user and their role (None: close the socket).

    `user` replaces the connection's user, so later per-message checks see new hub scopes.
    """

    user: Any
    role: Role | None


async def recheck(handler: Any, user: Any, path: str, policy: RolePolicy) -> Recheck:
    """Re-read the user (from JupyterHub when there is one) and re-resolve their role.

    Raises IdentityUnavailable when the hub cannot answer; the caller decides how long to trust
    the last answer.
    """
    fresh = await refresh_identity(handler, user, max_age=policy.recheck_interval / 2)
    if fresh is None:
        return Recheck(None, None)
    return Recheck(fresh, await resolve_role(handler, fresh, path, policy))


Callback = Callable[..., Awaitable[None] | None]


class RoleWatcher:
    """Re-checks one connection's role every `policy.recheck_interval` seconds.

    Calls `on_change(role, user)` on a change of role and `on_revoked(code, reason)` once on loss.
    """

    def __init__(
        self,
        handler: Any,
        user: Any,
        path: str,
        policy: RolePolicy,
        role: Role,
        *,
        on_change: Callback,
        on_revoked: Callback,
    ) -> None:
        self.handler = handler
        self.user = user
        self.path = path
        self.policy = policy
        self.role: Role | None = role
        self._on_change = on_change
        self._on_revoked = on_revoked
        self._task: asyncio.Task | None = None
        self._failing_since: float | None = None

    def start(self) -> None:
        """Begin the periodic re-check on the running loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        """Stop re-checking; call from `on_close`."""
        task, self._task = self._task, None
        # From inside the loop itself (a revocation) just let it end: cancelling would abort
        # the on_revoked callback mid-way.
        if task is not None and task is not _current_task():
            task.cancel()

    async def check_now(self) -> Role | None:
        """One re-check now: updates `role` and `user`, fires the callbacks, returns the role.

        Hub outages keep the last role for `policy.recheck_grace` seconds, then revoke.
        """
        if self.role is None:
            return None
        try:
            outcome = await recheck(self.handler, self.user, self.path, self.policy)
        except IdentityUnavailable as e:
            now = time.monotonic()
            self._failing_since = self._failing_since or now
            log.warning("marimo-collab: role re-check for %s failed: %s", self.path, e)
            if now - self._failing_since < self.policy.recheck_grace:
                return self.role
            outcome = Recheck(self.user, None)
            reason = REASON_UNVERIFIED
        else:
            self._failing_since = None
            reason = REASON_REVOKED
        if outcome.role is None:
            self.role = None
            self.stop()
            await _call(self._on_revoked, CLOSE_FORBIDDEN, reason)
            return None
        self.user = outcome.user
        if outcome.role != self.role:
            self.role = outcome.role
            await _call(self._on_change, outcome.role, outcome.user)
        return self.role

    async def _run(self) -> None:
        while self.role is not None:
            await asyncio.sleep(self.policy.recheck_interval)
            try:
                await self.check_now()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug in one re-check must not leave the socket unchecked forever: fail closed.
                log.exception("marimo-collab: role re-check for %s crashed", self.path)
                self.role = None
                await _call(self._on_revoked, CLOSE_FORBIDDEN, REASON_UNVERIFIED)


def _current_task() -> asyncio.Task | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


async def _call(callback: Callback, *args: Any) -> None:
    result = callback(*args)
    if inspect.isawaitable(result):
        await result
