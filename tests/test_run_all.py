"""Run all through the protocol: like marimo's "run stale", it runs only what is not current."""

from __future__ import annotations

import asyncio

from marimo_collab_ext.client import CollabClient

from .test_kernel_protocol import TIMEOUT, output_text
from .test_mirror import until


class Runs:
    """Records a peer's broadcasts; runs cells and returns what the run broadcast."""

    def __init__(self, client: CollabClient) -> None:
        self.client = client
        self.events: list[dict] = []
        client.listeners.append(self.events.append)

    async def run(self, *runs: list[str]) -> list[dict]:
        """Send these runs in order, then wait until the kernel has done them all.

        The last one must run something: `busy` is announced before its answer.
        """
        start = len(self.events)
        for cell_ids in runs:
            await self.client.run(cell_ids)
        await until(lambda: any(e["type"] == "kernel_status" and e["status"] == "idle"
                                for e in self.events[start:]), TIMEOUT, "the runs to end")
        return self.events[start:]


def started(events: list[dict]) -> set[str]:
    """The cells that began running during these events."""
    return {e["data"]["cell_id"] for e in events if e["type"] == "kernel"
            and e["op"] == "cell-op" and e["data"].get("status") == "running"}


def replace(client: CollabClient, cell_id: str, old: str, new: str) -> None:
    start = client.text(cell_id).index(old)
    client.edit(cell_id, {"from": start, "to": start + len(old), "insert": new})


async def test_run_all_skips_current_cells_and_runs_edited_ones(connect):
    a = await connect()
    runs = Runs(a)
    imports, markdown, slider, squares, total, largest = a.order
    assert started(await runs.run(a.order)) == set(a.order)

    # Nothing changed: run all reruns nothing, so no output flickers. An explicit run of
    # one cell always runs it (and, sent after, shows when the kernel is done with both).
    assert started(await runs.run(a.order, [markdown])) == {markdown}

    replace(a, squares, "n * n", "n * n * n")
    await a.flush()
    second = await runs.run(a.order)
    # The edited cell runs and marimo reruns its dependents; the current cells do not run.
    assert started(second) == {squares, total, largest}
    assert any("225" in output_text(e) for e in second if e["type"] == "kernel"
               and e["op"] == "cell-op" and e["data"].get("cell_id") == total)

    # A run of some cells runs each one it names, as marimo's "run selected cells" does.
    assert started(await runs.run([markdown, total])) == {markdown, total}


async def test_run_all_reruns_errored_and_re_edited_cells(connect):
    a = await connect()
    runs = Runs(a)
    imports, markdown, slider, squares, total, largest = a.order
    replace(a, largest, "max(squares)", "max(squares) // 0")
    await a.flush()
    await runs.run(a.order)

    # An errored cell is never current.
    assert started(await runs.run(a.order)) == {largest}
    replace(a, largest, "max(squares) // 0", "max(squares)")
    await a.flush()
    assert started(await runs.run(a.order)) == {largest}

    # Edited and edited back: the code is what last ran, but the kernel dropped the cell's
    # variables when it took the edit.
    replace(a, squares, "n * n", "n + n")
    await a.flush()
    await asyncio.sleep(0.5)  # the edit reaches the kernel before it is undone
    replace(a, squares, "n + n", "n * n")
    await a.flush()
    await asyncio.sleep(0.5)
    assert started(await runs.run(a.order, [markdown])) == {squares, total, largest, markdown}


async def test_lazy_kernel_runs_all_it_is_asked(connect, jp_root_dir):
    # marimo's lazy mode only marks a rerun cell's dependents stale: skipping them would
    # leave them stale, so run all skips nothing there.
    (jp_root_dir / "pyproject.toml").write_text('[tool.marimo.runtime]\non_cell_change = "lazy"\n')
    a = await connect()
    runs = Runs(a)
    imports, markdown, slider, squares, total, largest = a.order
    await runs.run(a.order)
    replace(a, squares, "n * n", "n * n * n")
    await a.flush()
    assert started(await runs.run(a.order)) == set(a.order)
