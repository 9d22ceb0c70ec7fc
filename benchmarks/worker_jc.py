"""Load-generator worker for jupyter-collaboration: Yjs clients (pycrdt) on one text room.

Runs in benchmarks/.venv-jc as `python -m benchmarks.worker_jc '<json config>'` (see driver.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sys
import time

from pycrdt import (
    Doc,
    Text,
    YMessageType,
    YSyncMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)
from websockets.asyncio.client import connect

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


class YClient:
    """One Yjs peer: the sync protocol's two steps, then updates both ways (y-websocket's way)."""

    def __init__(self, ws, editor: int | None, tracker: Tracker) -> None:
        self.ws, self.editor, self.tracker = ws, editor, tracker
        self.doc = Doc()
        self.text = self.doc.get("source", type=Text)
        self.synced = asyncio.Event()
        self.seen = 0
        self.text.observe(self._observed)
        self.reader = asyncio.ensure_future(self._read())

    def _observed(self, event) -> None:
        inserted = "".join(d["insert"] for d in event.delta if isinstance(d.get("insert"), str))
        keys = [k for k in keys_in(inserted) if k // 1_000_000 != self.editor]
        if keys:
            self.tracker.received(keys, time.monotonic())
            self.seen += len(keys)

    async def _read(self) -> None:
        async for message in self.ws:
            if not isinstance(message, bytes) or message[0] != YMessageType.SYNC:
                continue  # awareness and raw messages are not part of the measurement
            reply = handle_sync_message(message[1:], self.doc)
            if reply is not None:
                await self.ws.send(reply)
            if message[1] == YSyncMessageType.SYNC_STEP2:
                self.synced.set()

    def insert(self, index: int, text: str) -> None:
        """A local edit, sent at once as one update (what y-websocket does per transaction)."""
        before = self.doc.get_state()
        self.text.insert(index, text)
        asyncio.ensure_future(self.ws.send(create_update_message(self.doc.get_update(before))))

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self.reader, return_exceptions=True)


async def join(cfg: dict, spec: dict, tracker: Tracker) -> YClient:
    ws = await connect(cfg["ws_url"], additional_headers={"Authorization": f"token {cfg['token']}"},
                       max_size=None, open_timeout=30)
    client = YClient(ws, spec.get("editor"), tracker)
    await ws.send(create_sync_message(client.doc))
    await asyncio.wait_for(client.synced.wait(), 30)
    return client


async def main(cfg: dict) -> None:
    tracker = Tracker(receipts=[] if cfg.get("receipts") else None)
    clients = await asyncio.gather(*(join(cfg, spec, tracker) for spec in cfg["clients"]))
    emit({"ready": True})
    start = (await read_line())["start"]
    tasks = []
    for client in clients:
        if client.editor is None:
            continue
        rng = random.Random(cfg["seed"] * 7919 + client.editor)

        def edit(seq: int, now: float, client=client, rng=rng) -> None:
            key = client.editor * 1_000_000 + seq
            tracker.typed[key] = tracker.sent[key] = now
            client.insert(position(rng, len(client.text)), token(client.editor, seq))

        tasks.append(type_on_schedule(edit, client.editor, cfg["n_editors"], cfg["rate"],
                                      cfg["edits_each"], start, tracker))
    await asyncio.gather(*tasks)
    expected = [cfg["total_edits"] - (cfg["edits_each"] if c.editor is not None else 0)
                for c in clients]
    await wait_until(lambda: all(c.seen >= n for c, n in zip(clients, expected, strict=True)),
                     settle_deadline(cfg, start))
    digests = {"notebook": [hashlib.sha1(str(c.text).encode()).hexdigest() for c in clients]}
    missing = sum(max(0, n - c.seen) for c, n in zip(clients, expected, strict=True))
    emit(tracker.report(digests, {"missing": missing}))
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
