"""What every load-generator worker shares: edit tokens, the typing schedule, the result record.

Standard library only, so the jupyter-collaboration worker (another venv) imports it too.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import resource
import sys
import time
from dataclasses import dataclass, field

# An edit inserts "<editor.seq>": receivers find it in the inserted text of any change,
# however it was rebased or merged, so both servers are measured the same way.
TOKEN = re.compile(r"<(\d+)\.(\d+)>")
KEY_STRIDE = 1_000_000


def token(editor: int, seq: int) -> str:
    """The text edit `seq` of editor `editor` inserts."""
    return f"<{editor}.{seq}>"


def keys_in(text: str) -> list[int]:
    """Edit keys (editor * KEY_STRIDE + seq) of the tokens in some inserted text."""
    return [int(e) * KEY_STRIDE + int(s) for e, s in TOKEN.findall(text)]


def editor_of(key: int) -> int:
    return key // KEY_STRIDE


@dataclass
class Tracker:
    """One worker's observations, in time.monotonic() seconds (one clock for all processes).

    `recv_max` / `recv_count` fold every receiving client of this worker into one entry per edit.
    """

    typed: dict[int, float] = field(default_factory=dict)
    sent: dict[int, float] = field(default_factory=dict)
    ok: dict[int, float] = field(default_factory=dict)
    recv_max: dict[int, float] = field(default_factory=dict)
    recv_count: dict[int, int] = field(default_factory=dict)
    lateness: list[float] = field(default_factory=list)
    stale: int = 0
    # [key, time] of every receipt by every client, when the run asks (bench_lecture.py)
    receipts: list[list[float]] | None = None

    def received(self, keys: list[int], now: float) -> None:
        if self.receipts is not None:
            self.receipts.extend([key, now] for key in keys)
        for key in keys:
            if self.recv_max.get(key, 0.0) < now:
                self.recv_max[key] = now
            self.recv_count[key] = self.recv_count.get(key, 0) + 1

    def sent_now(self, keys: list[int], now: float) -> None:
        for key in keys:
            self.sent.setdefault(key, now)

    def report(self, digests: dict[str, list[str]], extra: dict | None = None) -> dict:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"typed": self.typed, "sent": self.sent, "ok": self.ok,
                "recv_max": self.recv_max, "recv_count": self.recv_count,
                "lateness": self.lateness, "stale": self.stale, "digests": digests,
                "cpu": usage.ru_utime + usage.ru_stime, "receipts": self.receipts,
                **(extra or {})}


async def type_on_schedule(edit, editor: int, n_editors: int, rate: float, count: int,
                           start: float, tracker: Tracker) -> None:
    """Call `edit(seq)` `count` times at `rate` per second from `start`, open loop.

    Editors are staggered evenly inside one period; lateness shows generator overload.
    """
    period = 1.0 / rate
    offset = editor * period / max(n_editors, 1)
    for seq in range(count):
        due = start + offset + seq * period
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.monotonic()
        tracker.lateness.append(now - due)
        edit(seq, now)


def settle_deadline(cfg: dict, start: float) -> float:
    """When receivers stop waiting: `settle` s after the typing schedule ends.

    After the schedule, not after this worker's own typing: a worker with viewers only
    (bench_lecture.py's) types nothing, and would otherwise give up `settle` s after start.
    """
    typing_ends = start + cfg["edits_each"] / cfg["rate"] if cfg["rate"] else start
    return max(time.monotonic(), typing_ends) + cfg["settle"]


def position(rng: random.Random, length: int) -> int:
    """Where the next token goes: anywhere in the document (stress for the merge)."""
    return rng.randint(0, length)


async def read_line() -> dict:
    """The next JSON command from the orchestrator on stdin, without blocking the loop."""
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line:
        raise SystemExit("orchestrator went away")
    return json.loads(line)


def emit(message: dict) -> None:
    """One JSON line to the orchestrator."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def wait_until(predicate, deadline: float, step: float = 0.01) -> bool:
    """Poll `predicate` until it holds or `deadline` (monotonic seconds) passes."""
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True
