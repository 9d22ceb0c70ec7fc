"""Real @codemirror/collab peers (Node, tests/js/peers/swarm.mjs) converge on the real server.

The peers type hundreds of concurrent edits (emoji, CJK, CRLF, deletions) into the same cells
over a hostile network: random latency, duplicated and partial pushes, disconnects followed by
a catch-up join. At the end every peer holds exactly what a fresh client reads from the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

from marimo_collab_ext.client import CollabClient, ws_url

from .ot_jsharness import ensure_node_modules

JS_DIR = Path(__file__).parent / "js"


def ensure_swarm_modules() -> Path:
    """tests/js with its pinned packages, `ws` included (an older checkout may lack it)."""
    js_dir = ensure_node_modules()
    if not (js_dir / "node_modules" / "ws").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=js_dir, check=True,
                       capture_output=True, timeout=300)
    return js_dir


async def run_swarm(server_url: str, token: str, path: str, timeout: float = 180,
                    **config) -> dict:
    """Run the Node swarm against a server and return its report (see swarm.mjs)."""
    js_dir = ensure_swarm_modules()
    config = {"url": ws_url(server_url, path), "token": token, **config}
    proc = await asyncio.create_subprocess_exec(
        "node", "peers/swarm.mjs", json.dumps(config), cwd=js_dir,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_OPTIONS": ""})
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")
    return json.loads(out)


class Swarm:
    """A swarm started with `control`: type until `finish()`; `acked()` asks for acked tokens."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, server_url: str, token: str, path: str, **config) -> Swarm:
        js_dir = ensure_swarm_modules()
        config = {"url": ws_url(server_url, path), "token": token, "control": True,
                  "edits": 10**7, "deadlineMs": 6 * 3600 * 1000, **config}
        proc = await asyncio.create_subprocess_exec(
            "node", "peers/swarm.mjs", json.dumps(config), cwd=js_dir, limit=2**28,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "NODE_OPTIONS": ""})
        return cls(proc)

    async def _line(self, timeout: float) -> dict:
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            err = await self.proc.stderr.read()
            raise RuntimeError(f"swarm exited: {err.decode(errors='replace')}")
        return json.loads(line)

    async def acked(self, timeout: float = 30) -> set[str]:
        """Tokens whose push was answered `ok` so far."""
        self.proc.stdin.write(b"acked\n")
        await self.proc.stdin.drain()
        return set((await self._line(timeout))["acked"])

    async def finish(self, timeout: float = 180) -> dict:
        """Stop typing, let every peer settle, and return the report."""
        self.proc.stdin.write(b"stop\n")
        await self.proc.stdin.drain()
        try:
            return await self._line(timeout)
        finally:
            self.kill()
            await self.proc.wait()

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


async def server_docs(server_url: str, token: str, path: str) -> dict[str, str]:
    """What a fresh client reads from the server: cell id -> text."""
    client = await CollabClient.connect(server_url, path, token=token)
    try:
        return {cid: client.text(cid) for cid in client.order}
    finally:
        await client.close()


def assert_converged(report: dict, truth: dict[str, str]) -> None:
    """No failure, no error answer, and every peer equals the server, cell by cell."""
    assert report["failure"] is None, report
    assert report["errors"] == [], report["errors"]
    for peer in report["peers"]:
        assert set(peer["docs"]) == set(truth)
        for cid, text in truth.items():
            assert peer["docs"][cid] == text, (peer["index"], cid)


async def test_three_codemirror_peers_converge_under_latency_duplicates_and_reconnects(
        server, notebook):
    report = await run_swarm(server["url"], server["token"], notebook, peers=3, edits=300,
                             seed=11, run="conv", pDisconnect=0.01)
    truth = await server_docs(server["url"], server["token"], notebook)
    assert_converged(report, truth)
    stats = report["stats"]
    assert stats["keystrokes"] >= 3 * 300 * 0.9  # a deletion that found no room is skipped
    assert stats["receives"] >= stats["keystrokes"] / 3  # every peer saw the others' pushes
    assert stats["dupPushes"] > 0 and stats["partialPushes"] > 0
    assert stats["disconnects"] > 0 and stats["catchUps"] > 0
    # The server holds 2,000 pushes per cell: a stale answer would be a protocol bug here.
    assert report["stale"] == 0, report["staleDetails"]
    assert report["lostUnconfirmed"] == []


async def test_codemirror_peers_typing_into_the_same_cell_keep_every_acknowledged_token(
        server, notebook):
    first = await server_docs(server["url"], server["token"], notebook)
    target = list(first)[2]
    report = await run_swarm(server["url"], server["token"], notebook, peers=3, edits=250,
                             seed=23, run="same", cells=[target], protectTokens=True,
                             latency=[0, 60], pDisconnect=0.02)
    truth = await server_docs(server["url"], server["token"], notebook)
    assert_converged(report, truth)
    assert report["stale"] == 0, report["staleDetails"]
    assert len(report["acked"]) > 300
    missing = [t for t in report["acked"] if t not in truth[target]]
    assert missing == []
    assert all(truth[cid] == text for cid, text in first.items() if cid != target)
