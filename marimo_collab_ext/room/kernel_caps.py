"""How many kernels run on this server, and who started each: the kernel caps.

`c.MarimoCollab.kernel_max` bounds the kernels of all rooms, `kernel_max_per_user` those one
person started (docs/security.md "Limits"). The server's owner is never refused (it is their
server), but their kernels count toward `kernel_max`. A kernel whose room nobody is in (it
lives on `kernel_idle_timeout` after the last person left) gives its place up before anyone
is refused: the one left alone longest goes first.
"""

from __future__ import annotations

from typing import Protocol

from .errors import KernelError


class Evictable(Protocol):
    """What the caps need of a room's KernelLink to free its place."""

    def unattended_since(self) -> float | None:
        """Monotonic time the room's last person left; None while someone is in it."""

    def evict(self) -> None:
        """Stop the kernel now, saying why; its place is free when this returns."""


class KernelCaps:
    """The running kernels by room, with who started each; one per RoomManager."""

    def __init__(self, settings) -> None:
        self.settings = settings
        # the KernelLink of a room -> who started its kernel (None: the owner)
        self._starters: dict[object, str | None] = {}

    def __len__(self) -> int:
        return len(self._starters)

    def started_by(self, username: str) -> int:
        """Kernels `username` started that still run."""
        return sum(starter == username for starter in self._starters.values())

    def take(self, link: object, username: str, owner: bool = False, *,
             check: bool = True) -> None:
        """Count the kernel `username` starts for a room's `link`, or refuse it (kernel_error).

        A room counts once, however many runs race to start its kernel. `check=False` counts a
        kernel already starting.
        """
        if link in self._starters:
            return
        if check and not owner:
            limit = self.settings.kernel_max
            if limit > 0 and len(self) >= limit:
                self._evict_one(lambda starter: True)
            if limit > 0 and len(self) >= limit:
                raise KernelError(
                    f"kernel limit reached: {len(self)} kernels already run on this server, the"
                    f" most allowed (c.MarimoCollab.kernel_max = {limit}); a kernel stops"
                    " when idle, or ask the server's owner")
            limit = self.settings.kernel_max_per_user
            if limit > 0 and self.started_by(username) >= limit:
                self._evict_one(lambda starter: starter == username)
            if limit > 0 and self.started_by(username) >= limit:
                raise KernelError(
                    f"kernel limit reached: you already run {limit} kernel(s) in other"
                    f" notebooks, the most one person may start"
                    f" (c.MarimoCollab.kernel_max_per_user = {limit}); a kernel stops when"
                    " idle, or ask the server's owner")
        self._starters[link] = None if owner else username

    def _evict_one(self, counts: object) -> None:
        """Stop the kernel left alone longest among those `counts(starter)` selects, if any."""
        alone = [(since, id(link), link) for link, starter in self._starters.items()
                 if counts(starter) and (since := link.unattended_since()) is not None]
        if alone:
            link = min(alone)[2]
            self.release(link)
            link.evict()

    def release(self, link: object) -> None:
        """The kernel of this room's `link` stopped or died."""
        self._starters.pop(link, None)
