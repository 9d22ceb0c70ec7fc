"""Budgets of connections: messages per second, sockets per user, bytes queued for slow readers.

Pure accounting (docs/security.md, "Limits"): the handler reports how many bytes its socket
still holds and drops the connections this module names.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Identities that are the server's owner share one budget: Jupyter names every
# token-authenticated connection anew, yet they are all the same person.
OWNER_KEY = "owner"  # other keys are "user <username>"


class TokenBucket:
    """A rate limit: `rate` messages per second with bursts of `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Overflow:
    """Whether a connection keeps sending far past its rate limit (then it is closed).

    Every refused request is still answered (docs/protocol.md), and that answer costs the
    server as much as the request: a flooder that ignores `rate_limited` would take the CPU
    the room needs. Refusing more than a tenth of `rate` messages a second (at least 10),
    `strikes` seconds running, closes the connection; one burst past the limit never does, and
    a client that slows down when told never gets there. A tenth, because a flooder is read
    only as fast as the server keeps up, which is far below what it sends.
    """

    def __init__(self, rate: float, strikes: int = 3) -> None:
        self.rate, self.strikes = max(10.0, rate / 10), strikes
        self.window, self.refused, self.struck = time.monotonic(), 0, 0

    def refuse(self) -> bool:
        """Count one refused message; True when the connection should be closed."""
        now = time.monotonic()
        if now - self.window >= 1.0:
            over = self.refused > self.rate and now - self.window < 2.0
            self.struck = self.struck + 1 if over else 0
            self.window, self.refused = now, 0
        self.refused += 1
        return self.struck >= self.strikes


@dataclass(eq=False)
class Account:
    """One connection's share: bytes its socket still has to send."""

    user: UserBudget
    connection: object
    queued: int = 0
    dropped: bool = False


@dataclass(eq=False)
class UserBudget:
    """What one person's connections share: a rate limit and a byte budget."""

    key: str
    bucket: TokenBucket
    accounts: set[Account] = field(default_factory=set)
    queued: int = 0


class Flow:
    """Every connection of the server, by user; decides who is too slow to keep."""

    def __init__(self, *, per_connection: int, per_user: int, total: int,
                 connections_per_user: int, user_rate: float, user_burst: int) -> None:
        self.per_connection, self.per_user, self.total = per_connection, per_user, total
        self.connections_per_user = connections_per_user
        self.user_rate, self.user_burst = user_rate, user_burst
        self.users: dict[str, UserBudget] = {}
        self.queued = 0

    def may_connect(self, key: str) -> bool:
        user = self.users.get(key)
        return user is None or len(user.accounts) < self.connections_per_user

    def attach(self, key: str, connection: object) -> Account:
        user = self.users.get(key)
        if user is None:
            user = self.users[key] = UserBudget(key, TokenBucket(self.user_rate, self.user_burst))
        account = Account(user, connection)
        user.accounts.add(account)
        return account

    def detach(self, account: Account) -> None:
        self.update(account, 0)
        account.dropped = True
        user = account.user
        user.accounts.discard(account)
        if not user.accounts and self.users.get(user.key) is user:
            del self.users[user.key]

    def update(self, account: Account, queued: int) -> None:
        """The socket now holds `queued` bytes not yet sent."""
        if account.dropped:
            return
        delta = queued - account.queued
        account.queued = queued
        account.user.queued += delta
        self.queued += delta

    def admit(self, account: Account, size: int) -> list[Account]:
        """Connections to drop before `size` more bytes are queued on `account`.

        A message to an empty queue always goes (a large `join` answer): the per-connection
        cap applies to the backlog. Over the per-user or server-wide cap, the connections
        furthest behind go first. Each one named is marked dropped and its bytes released.
        """
        if account.queued and account.queued + size > self.per_connection:
            return self._drop([account])
        victims = self._furthest_behind(account.user.accounts,
                                        account.user.queued + size - self.per_user)
        if account not in victims:
            everyone = (a for user in self.users.values() for a in user.accounts)
            victims += self._furthest_behind(
                everyone, self.queued - sum(v.queued for v in victims) + size - self.total,
                skip=victims)
        return self._drop(victims)

    @staticmethod
    def _furthest_behind(accounts, excess: int, skip=()) -> list[Account]:
        if excess <= 0:
            return []
        chosen: list[Account] = []
        for candidate in sorted((a for a in accounts if a not in skip),
                                key=lambda a: a.queued, reverse=True):
            if excess <= 0 or candidate.queued == 0:
                break
            chosen.append(candidate)
            excess -= candidate.queued
        return chosen

    def _drop(self, accounts: list[Account]) -> list[Account]:
        for account in accounts:
            self.update(account, 0)
            account.dropped = True
        return accounts
