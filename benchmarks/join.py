"""Time to join a 200-cell notebook on our server: server time, and the room-load part of it.

Server time = join round trip - heartbeat round trip (the network and framing) - client decode;
measured for a fresh room, a loaded one, and one restored from its journal after a restart.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path

from websockets.asyncio.client import connect

from marimo_collab_ext.client.client import ws_url
from marimo_collab_ext.persistence.notebook_file import parse_notebook

from .driver import marimo_notebook
from .procstat import cpu_seconds
from .servers import ours

CELLS = 200


async def _request(ws, message: dict) -> tuple[float, dict, float]:
    """Send a request; (round trip s, response, client-side decode s) for its response."""
    t0 = time.perf_counter()
    await ws.send(json.dumps(message))
    while True:
        raw = await ws.recv()
        t1 = time.perf_counter()
        response = json.loads(raw)
        decode = time.perf_counter() - t1
        if response.get("type") == "response" and response.get("in_reply") == message["id"]:
            return t1 - t0, response, decode


async def _join(url: str, token: str) -> tuple[float, float, float, object]:
    """Open a socket and join: (join round trip, decode, median heartbeat round trip, socket)."""
    ws = await connect(url, additional_headers={"Authorization": f"token {token}"},
                       max_size=None)
    rtt, response, decode = await _request(ws, {"type": "join", "id": 1,
                                                "peer_id": uuid.uuid4().hex})
    assert response["status"] == "ok" and len(response["notebook"]["cells"]) == CELLS
    beats = [(await _request(ws, {"type": "heartbeat", "id": 2 + i}))[0] for i in range(5)]
    return rtt, decode, statistics.median(beats), ws


async def _reopen(url_of, token: str, samples: int, cpu) -> dict:
    """After a server restart: each room comes back from its journal (the usual case)."""
    times = []
    await (await _join(url_of("warmup.py"), token))[3].close()  # one-time imports
    cpu0 = cpu()
    for i in range(samples):
        rtt, decode, beat, ws = await _join(url_of(f"join{i}.py"), token)
        times.append(rtt - decode - beat)
        await ws.close()
    return {"journal_join_server_ms": 1000 * statistics.median(times),
            "journal_join_server_cpu_ms": 1000 * (cpu() - cpu0) / samples}


async def _measure(url_of, token: str, samples: int, cpu) -> dict:
    cold, warm = [], []
    await (await _join(url_of("warmup.py"), token))[3].close()  # one-time imports
    cpu0 = cpu()
    for i in range(samples):
        first = await _join(url_of(f"join{i}.py"), token)  # loads the room
        second = await _join(url_of(f"join{i}.py"), token)  # room already loaded
        cold.append(first[0] - first[1] - first[2])
        warm.append(second[0] - second[1] - second[2])
        await first[3].close()
        await second[3].close()
    return {"cold_join_server_cpu_ms": 1000 * (cpu() - cpu0) / samples,  # with a warm join
            "cold_join_server_ms": 1000 * statistics.median(cold),
            "warm_join_server_ms": 1000 * statistics.median(warm),
            "room_load_ms": 1000 * (statistics.median(cold) - statistics.median(warm))}


def parse_time_ms(text: str, rounds: int = 5) -> float:
    """Median in-process time of parsing the notebook file (marimo's parser), for comparison."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        parse_notebook(text)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def run(workdir: Path, samples: int = 10, src: Path | None = None) -> dict:
    """Join a fresh 200-cell room `samples` times, then again while loaded; medians in ms."""
    server = ours(workdir, src)
    text = marimo_notebook(CELLS)
    for name in ["warmup.py"] + [f"join{i}.py" for i in range(samples)]:
        (server.root / name).write_text(text)
    server.start()
    try:
        result = asyncio.run(_measure(lambda p: ws_url(server.url, p), server.token, samples,
                                      lambda: cpu_seconds(server.proc.pid)))
    finally:
        server.stop()
    server.start()  # same root and journals: rooms are restored, not loaded fresh
    try:
        result.update(asyncio.run(_reopen(lambda p: ws_url(server.url, p), server.token,
                                          samples, lambda: cpu_seconds(server.proc.pid))))
    finally:
        server.stop()
    result.update(cells=CELLS, samples=samples, parse_in_process_ms=parse_time_ms(text))
    return result
