"""Load-generator worker for our server: a few CollabClients in one process, driven by stdin.

Run by the orchestrator as `python -m benchmarks.worker_ours '<json config>'` (see driver.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sys
import time

from marimo_collab_ext.client import CollabClient

from .workload import (
    Tracker,
    emit,
    keys_in,
    position,
    read_line,
    settle_deadline,
    token,
    type_on_schedule,
    wait_until,
)


def inserted(updates: list[dict]) -> str:
    """All text a list of wire updates inserts (ChangeSet JSON `[n, "line", ...]` parts)."""
    return "".join(s for u in updates for part in u["changes"] if isinstance(part, list)
                   for s in part[1:])


class _Discard:
    """Stands in for CollabClient.events: nobody reads them here, and they would pile up."""

    def put_nowait(self, item) -> None:
        pass


class MeasuredClient(CollabClient):
    """A CollabClient that notes when each token is first pushed and when its push is `ok`."""

    tracker: Tracker

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.events = _Discard()

    async def request(self, message: dict, timeout: float = 60) -> dict:
        if message.get("type") != "change":
            return await super().request(message, timeout)
        keys = keys_in(inserted(message["updates"]))
        self.tracker.sent_now(keys, time.monotonic())
        try:
            response = await super().request(message, timeout)
        except Exception as exc:
            if getattr(exc, "code", None) == "stale":
                self.tracker.stale += 1
            raise
        now = time.monotonic()
        for key in keys:
            self.tracker.ok.setdefault(key, now)
        return response


async def join(cfg: dict, spec: dict, tracker: Tracker) -> tuple[MeasuredClient, list[int]]:
    """Connect one client; count the other editors' tokens it applies in `seen[0]`."""
    # A spec's own token is another person (bench_lecture.py's identities)
    client = await MeasuredClient.connect(cfg["url"], cfg["path"],
                                          token=spec.get("token") or cfg["token"])
    client.tracker = tracker
    seen = [0]
    me = spec.get("editor")

    def on_message(message: dict) -> None:
        if message.get("type") != "change":
            return
        keys = [k for k in keys_in(inserted(message["updates"])) if k // 1_000_000 != me]
        if keys:
            tracker.received(keys, time.monotonic())
            seen[0] += len(keys)

    client.listeners.append(on_message)
    return client, seen


async def main(cfg: dict) -> None:
    tracker = Tracker(receipts=[] if cfg.get("receipts") else None)
    joined = await asyncio.gather(*(join(cfg, spec, tracker) for spec in cfg["clients"]))
    emit({"ready": True})
    start = (await read_line())["start"]
    tasks, runs = [], []
    for (client, _), spec in zip(joined, cfg["clients"], strict=True):
        if spec.get("editor") is None:
            continue
        cell_id = client.order[spec["cell"] % len(client.order)]
        rng = random.Random(cfg["seed"] * 7919 + spec["editor"])
        every = spec.get("run_every", 0)  # a runner also runs another cell every N edits
        run_ids = [client.order[spec.get("run_cell", 1) % len(client.order)]]

        def edit(seq: int, now: float, client=client, cell_id=cell_id, spec=spec, rng=rng,
                 every=every, run_ids=run_ids):
            text = token(spec["editor"], seq)
            tracker.typed[spec["editor"] * 1_000_000 + seq] = now
            client.edit(cell_id, {"from": position(rng, client.cells[cell_id].doc.length),
                                  "insert": text})
            if every and seq % every == every - 1:
                runs.append(asyncio.ensure_future(client.run(run_ids)))

        tasks.append(type_on_schedule(edit, spec["editor"], cfg["n_editors"], cfg["rate"],
                                      cfg["edits_each"], start, tracker))
    await asyncio.gather(*tasks)
    ran = await asyncio.gather(*runs, return_exceptions=True)
    expected = [cfg["total_edits"] - (cfg["edits_each"] if s.get("editor") is not None else 0)
                for s in cfg["clients"]]
    deadline = settle_deadline(cfg, start)
    await wait_until(lambda: all(seen[0] >= n for (_, seen), n in zip(joined, expected,
                                                                      strict=True)), deadline)
    for client, _ in joined:
        try:
            await client.flush(timeout=max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            pass
    digests = {"notebook": [hashlib.sha1("\x00".join(c.text(cid) for cid in c.order).encode())
                            .hexdigest() for c, _ in joined]}
    missing = sum(max(0, n - seen[0]) for (_, seen), n in zip(joined, expected, strict=True))
    emit(tracker.report(digests, {"missing": missing,
                                  "stale_client": sum(c.stale_answers for c, _ in joined),
                                  "runs": len(ran),
                                  "runs_failed": sum(isinstance(r, Exception) for r in ran)}))
    await asyncio.gather(*(c.close() for c, _ in joined), return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
