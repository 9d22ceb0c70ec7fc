"""Kernels a viewer's joins and a runner's runs start (issue #14): count and memory (RSS).

A real server with several people (tests/identities.py) and `kernel_start_on_join`:
1. vera (viewer) joins N notebooks; 2. rita (runner) runs one cell in M notebooks.
Counts the server's kernel processes and sums their RSS after each. Caps are the server's
defaults unless given as --MarimoCollab.x=y arguments.

Usage: python benchmarks/bench_kernel_caps.py [--viewer 6] [--runner 12] [--MarimoCollab.x=y]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from marimo_collab_ext.client import CollabClient  # noqa: E402
from marimo_collab_ext.client.client import CollabError  # noqa: E402
from tests.servers import ServerProcess  # noqa: E402

PEOPLE = ["--ServerApp.identity_provider_class=tests.identities.TokenPerPerson",
          "--ServerApp.authorizer_class=tests.identities.RightsPerPerson"]


def kernels(server: ServerProcess) -> tuple[int, int]:
    """(kernel processes, their total RSS in bytes) under the server."""
    procs = [p for p in psutil.Process(server.proc.pid).children(recursive=True)
             if "launch_kernel" in " ".join(p.cmdline())]
    return len(procs), sum(p.memory_info().rss for p in procs)


async def settle(server: ServerProcess, seconds: float = 15) -> tuple[int, int]:
    """Kernel count and RSS once the count has held still for 3 s (kernels boot slowly)."""
    last, still = None, 0.0
    while still < 3 and seconds > 0:
        await asyncio.sleep(0.5)
        seconds -= 0.5
        now = kernels(server)[0]
        still = still + 0.5 if now == last else 0.0
        last = now
    return kernels(server)


async def main(args: argparse.Namespace, extra: list[str]) -> None:
    root = Path(tempfile.mkdtemp(prefix="kernel-caps-"))
    (root / "nb").mkdir()
    count = max(args.viewer, args.runner)
    for i in range(count):
        shutil.copy(ROOT / "examples" / "demo.py", root / "nb" / f"n{i}.py")
    server = ServerProcess(root / "nb", root / "journal",
                           collab={"kernel_start_on_join": True},
                           extra_args=PEOPLE + extra).start()
    clients: list[CollabClient] = []
    try:
        for i in range(args.viewer):
            clients.append(await CollabClient.connect(server.url, f"n{i}.py",
                                                      token="vera-token"))
        n, rss = await settle(server)
        print(f"viewer joined {args.viewer} notebooks: {n} kernels, {rss / 2**20:.0f} MB")
        for c in clients:
            await c.close()
        clients.clear()
        server.stop()
        server = ServerProcess(root / "nb", root / "journal", extra_args=PEOPLE + extra).start()
        refused = 0
        for i in range(args.runner):
            client = await CollabClient.connect(server.url, f"n{i}.py", token="rita-token")
            clients.append(client)
            try:
                await client.run(client.order[:1])
            except CollabError as exc:
                refused += 1
                if refused == 1:
                    print(f"  refused: {exc}")
        n, rss = await settle(server)
        print(f"runner ran a cell in {args.runner} notebooks: {n} kernels, {rss / 2**20:.0f} MB"
              f" ({refused} runs refused)")
    finally:
        for c in clients:
            await c.close()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewer", type=int, default=6)
    parser.add_argument("--runner", type=int, default=12)
    asyncio.run(main(*parser.parse_known_args()))
