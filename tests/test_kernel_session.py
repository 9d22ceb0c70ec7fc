"""KernelSession against real marimo kernels: the contract the room relies on.

Every test launches marimo's `marimo._ipc.launch_kernel` for real.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import sys
import time
from pathlib import Path

import pytest

from marimo_collab_ext.kernel import (
    CellCode,
    KernelSession,
    KernelStartError,
    NoPendingInput,
    UiBacklogFull,
    UnknownObject,
)
from marimo_collab_ext.kernel import session as session_module
from marimo_collab_ext.kernel.adapter import check_version

NOTEBOOKS = Path(__file__).parent / "notebooks"
IDS = ["Hbol", "MJUe", "vblA", "bkHC", "lEQa", "PKri"]
TIMEOUT = 20


def slider6(**overrides: str) -> list[CellCode]:
    """The six cells of tests/notebooks/slider6.py, with our ids (code by id can be replaced)."""
    from marimo._internal.converters import MarimoConvert

    ir = MarimoConvert.from_py((NOTEBOOKS / "slider6.py").read_text()).to_ir()
    return [
        CellCode(id=i, code=overrides.get(i, c.code), name=c.name, config=dict(c.options))
        for i, c in zip(IDS, ir.cells, strict=True)
    ]


IMPORT, SLIDER, SQUARED, A, B, C = IDS


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie awaiting its reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


class Room:
    """Stands in for the room: records what the session reports, lets tests wait."""

    def __init__(self) -> None:
        self.notifications: list[tuple[str, dict]] = []
        self.statuses: list[tuple[str, str | None]] = []
        self._changed = asyncio.Event()

    def on_notification(self, op: str, data: dict) -> None:
        self.notifications.append((op, data))
        self._changed.set()

    def on_status(self, status: str, message: str | None) -> None:
        self.statuses.append((status, message))
        self._changed.set()

    async def until(self, predicate, timeout: float = TIMEOUT):
        deadline = time.monotonic() + timeout
        while not (result := predicate()):
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                recent = [(op, str(data)[:160]) for op, data in self.notifications[-8:]]
                raise AssertionError(f"timed out; statuses {self.statuses[-5:]}; last {recent}")
            try:
                # Also poll: process liveness changes without any notification.
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
            except asyncio.TimeoutError:
                pass
        return result

    def ops(self, op: str) -> list[dict]:
        return [d for o, d in self.notifications if o == op]


@pytest.fixture
def room():
    return Room()


@pytest.fixture
def session(room, tmp_path, jp_asyncio_loop):
    # Async tests run on pytest-jupyter's loop; fixtures stay sync and tear down on it.
    s = KernelSession(
        cwd=str(tmp_path),
        notebook_path=str(NOTEBOOKS / "slider6.py"),
        on_notification=room.on_notification,
        on_status=room.on_status,
        app_config={"width": "medium", "not_an_option": 1},
    )
    yield s
    jp_asyncio_loop.run_until_complete(s.shutdown())


def output_text(snapshot: dict, cell_id: str) -> str:
    output = snapshot["outputs"][cell_id]["output"]
    return "" if output is None else str(output["data"])


async def run_and_settle(room: Room, session: KernelSession, cells: list[CellCode]) -> dict:
    await session.run(cells)
    assert session.status == "busy"  # at once, before the kernel answers
    await room.until(lambda: session.status == "idle")
    return session.snapshot()


async def test_run_all_on_slider_notebook(room, session):
    cells = slider6()
    await session.start(cells)
    assert [s for s, _ in room.statuses][:2] == ["starting", "ready"]
    await room.until(lambda: session.status == "idle")  # registration done
    before = session.snapshot()
    assert before["outputs"][SQUARED]["status"] == "stale"  # registered, not run

    snap = await run_and_settle(room, session, cells)

    assert snap["status"] == "idle"
    assert f"object-id='{SLIDER}-0'" in output_text(snap, SLIDER)
    assert "9" in output_text(snap, SQUARED)
    assert snap["outputs"][B]["console"][0]["data"] == "b is 20\n"
    assert "c = <strong>21</strong>" in output_text(snap, C)
    assert snap["ui_values"] == {f"{SLIDER}-0": 3}
    assert all(o["status"] == "idle" for o in snap["outputs"].values())
    # Peers receive marimo's own notifications.
    assert any(d.get("cell_id") == SQUARED and d.get("output") for d in room.ops("cell-op"))


async def test_changing_upstream_code_reruns_the_chain(room, session):
    await run_and_settle(room, session, slider6())
    snap = await run_and_settle(room, session, [c for c in slider6(bkHC="a = 5") if c.id == A])
    assert "c = <strong>51</strong>" in output_text(snap, C)
    assert snap["outputs"][B]["console"][0]["data"] == "b is 50\n"


async def test_ui_value_reruns_dependent_and_reaches_late_joiner(room, session):
    await run_and_settle(room, session, slider6())
    await session.set_ui_value(f"{SLIDER}-0", 7)
    await room.until(lambda: session.status == "idle")

    late_joiner = session.snapshot()
    assert "49" in output_text(late_joiner, SQUARED)
    assert late_joiner["ui_values"] == {f"{SLIDER}-0": 7}
    with pytest.raises(UnknownObject):
        await session.set_ui_value("nope-0", 1)


async def test_burst_of_ui_values_settles_on_the_last_one(room, session):
    # marimo merges queued UI updates into one run: the session must still come back idle.
    await run_and_settle(room, session, slider6())
    for value in (4, 5, 6, 7, 8, 9):
        await session.set_ui_value(f"{SLIDER}-0", value)
    await room.until(lambda: session.status == "idle")
    snap = session.snapshot()
    assert "81" in output_text(snap, SQUARED)
    assert snap["ui_values"] == {f"{SLIDER}-0": 9}


# A button counts presses; the last cell shows the count and the slider's value.
BUTTON_CELLS = [
    CellCode(id="imp", code="import marimo as mo"),
    CellCode(
        id="btn",
        code="button = mo.ui.button(value=0, on_click=lambda v: v + 1)\n"
        "slider = mo.ui.slider(0, 10)\n"
        "mo.hstack([button, slider])",
    ),
    CellCode(
        id="out",
        code="import time\ntime.sleep(0.05)\nf'button={button.value} slider={slider.value}'",
    ),
]


def object_ids(snapshot: dict, cell_id: str) -> list[str]:
    return re.findall(r"object-id='([^']+)'", output_text(snapshot, cell_id))


async def test_every_button_press_counts_while_the_kernel_is_busy(room, session):
    # Presses are events: a busy kernel must run each of them, not merge them like
    # slider positions (marimo's own queue would merge them, last value wins).
    snap = await run_and_settle(room, session, BUTTON_CELLS)
    button, slider = object_ids(snap, "btn")
    runs_before = len(room.ops("completed-run"))
    for press in range(1, 6):
        await session.set_ui_value(button, press)
        await session.set_ui_value(slider, press)  # positions between presses still merge
    await room.until(lambda: session.status == "idle")
    assert "button=5 slider=5" in output_text(session.snapshot(), "out")
    # One run per press: the slider's positions rode along, never in a run of their own.
    assert len(room.ops("completed-run")) - runs_before == 5


async def test_a_flood_of_presses_is_refused_beyond_the_backlog_not_merged(
    room, session, monkeypatch
):
    monkeypatch.setattr(session_module, "MAX_HELD_UI_BATCHES", 3)
    snap = await run_and_settle(room, session, BUTTON_CELLS)
    button, _ = object_ids(snap, "btn")
    for press in range(1, 5):  # one in flight, three waiting
        await session.set_ui_value(button, press)
    with pytest.raises(UiBacklogFull):
        await session.set_ui_value(button, 5)
    await room.until(lambda: session.status == "idle")
    assert "button=4 " in output_text(session.snapshot(), "out")


async def test_edit_without_run_shows_stale_and_delete_leaves_graph(room, session):
    await run_and_settle(room, session, slider6())
    statuses = len(room.statuses)
    cells = slider6(bkHC="a = 9")
    await session.sync_cells(cells)
    snap = session.snapshot()
    assert snap["outputs"][A]["status"] == "stale"
    assert snap["outputs"][A]["edited"] is True
    assert "c = <strong>21</strong>" in output_text(snap, C)  # nothing ran
    assert len(room.statuses) == statuses  # typing does not flap busy/idle for every peer

    await session.sync_cells([c for c in cells if c.id != B])
    # c lost its input: marimo reruns it and reports the missing name.
    await room.until(lambda: session.snapshot()["outputs"][C]["output"]["channel"] != "output")
    await room.until(lambda: session.status == "idle")
    snap = session.snapshot()
    assert B not in snap["outputs"]
    assert snap["outputs"][C]["output"]["channel"] == "marimo-error"


async def test_interrupt_stops_a_long_running_cell(room, session):
    code = 'import time\nprint("looping")\nwhile True:\n    time.sleep(0.05)'
    loop_cell = CellCode(id="loop", code=code)
    await session.start([loop_cell])
    await session.run([loop_cell])
    # Inside the user's loop (an interrupt during marimo's own setup ends the run silently).
    await room.until(lambda: session.snapshot()["outputs"]["loop"]["console"])
    assert session.snapshot()["outputs"]["loop"]["status"] == "running"
    await session.interrupt()
    await room.until(lambda: room.ops("interrupted"))
    await room.until(lambda: session.status == "idle")
    out = session.snapshot()["outputs"]["loop"]
    assert out["status"] == "idle"
    assert out["output"]["channel"] == "marimo-error"
    assert "interrupt" in str(out["output"]["data"]).lower()


async def test_interrupt_at_any_moment_leaves_no_cell_running(room, session):
    loop_cell = CellCode(id="loop", code="import time\nwhile True:\n    time.sleep(0.05)")
    await session.start([loop_cell])
    await session.run([loop_cell])
    await room.until(lambda: session.snapshot()["outputs"]["loop"]["status"] == "running")
    await session.interrupt()  # may land before marimo enters the cell's code
    await room.until(lambda: session.status == "idle")
    assert session.snapshot()["outputs"]["loop"]["status"] == "idle"


async def test_crashed_kernel_is_announced_and_next_run_starts_a_new_one(room, session, tmp_path):
    crash = CellCode(
        id="boom",
        code=(
            "import os, pathlib, subprocess\n"
            "child = subprocess.Popen(['sleep', '60'])\n"
            "pathlib.Path('child.pid').write_text(str(child.pid))\n"
            "os._exit(1)"
        ),
    )
    fine = CellCode(id="fine", code="40 + 2")
    await session.start([crash, fine])
    first_pid = session.pid
    await session.run([crash])
    await room.until(lambda: session.status == "dead")
    assert "exited with code 1" in room.statuses[-1][1]
    assert session.pid is None
    child_pid = int((tmp_path / "child.pid").read_text())
    # The crashed kernel's leftovers die with it.
    await room.until(lambda: not alive(first_pid) and not alive(child_pid), timeout=5)

    snap = await run_and_settle(room, session, [fine])
    assert session.pid != first_pid
    assert "42" in output_text(snap, "fine")


async def test_restart_clears_outputs_for_everyone(room, session):
    await run_and_settle(room, session, slider6())
    old_pid = session.pid
    room.notifications.clear()
    await session.restart(slider6())
    assert ("starting", "restarting: outputs cleared") in room.statuses
    cleared = {d["cell_id"] for d in room.ops("cell-op") if d.get("output", {}).get("data") == ""}
    assert set(IDS) <= cleared
    snap = session.snapshot()
    assert snap["ui_values"] == {}
    assert all(o["output"] is None for o in snap["outputs"].values())
    assert session.pid != old_pid and not alive(old_pid)


async def test_stdin_answers_input(room, session):
    ask = CellCode(id="ask", code='name = input("name? ")\nname.upper()')
    await session.start([ask])
    with pytest.raises(NoPendingInput):
        await session.send_stdin("too early")
    await session.run([ask])
    await room.until(lambda: session.snapshot()["outputs"]["ask"]["console"])
    prompt = session.snapshot()["outputs"]["ask"]["console"][0]
    assert prompt["channel"] == "stdin"
    await session.send_stdin("bob")
    await room.until(lambda: "BOB" in output_text(session.snapshot(), "ask"))
    assert session.snapshot()["outputs"]["ask"]["console"][0]["data"] == "name?  bob\n"


async def test_large_output_is_replaced_by_placeholder(room, tmp_path):
    session = KernelSession(
        cwd=str(tmp_path),
        notebook_path=None,
        on_notification=room.on_notification,
        on_status=room.on_status,
        max_output_bytes=100_000,
    )
    big = CellCode(id="big", code='"x" * 300_000')
    try:
        snap = await run_and_settle(room, session, [big])
    finally:
        await session.shutdown()
    assert "Output too large" in output_text(snap, "big")
    sent = [d["output"] for d in room.ops("cell-op") if d.get("output")]
    assert sent and all(len(str(o["data"])) < 1000 for o in sent)


async def test_shutdown_leaves_no_process_behind(room, session):
    child = CellCode(id="child", code='import subprocess\nproc = subprocess.Popen(["sleep", "60"])')
    pid_cell = CellCode(id="pid", code="proc.pid")
    snap = await run_and_settle(room, session, [child, pid_cell])
    child_pid = int(output_text(snap, "pid").split(">")[1].split("<")[0])
    kernel_pid = session.pid
    assert alive(kernel_pid) and alive(child_pid)
    await session.shutdown()
    assert session.status == "stopped"
    await room.until(lambda: not alive(kernel_pid) and not alive(child_pid), timeout=5)


def fake_python(tmp_path: Path, name: str, script: str) -> str:
    """A stand-in interpreter: answers the version probe, then runs `script` as the kernel."""
    path = tmp_path / name
    probe = 'case "$2" in *importlib.metadata*) echo 0.25.2; exit 0;; esac'
    path.write_text(f"#!/bin/sh\n{probe}\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def bare_session(room: Room, tmp_path: Path, python: str, **kwargs) -> KernelSession:
    return KernelSession(
        python=python,
        cwd=str(tmp_path),
        notebook_path=None,
        on_notification=room.on_notification,
        on_status=room.on_status,
        **kwargs,
    )


async def test_unsupported_marimo_is_refused_with_a_reason(room, tmp_path):
    with pytest.raises(KernelStartError, match="0.24.1"):
        check_version("0.24.1")
    check_version("0.25.9")
    old = tmp_path / "python"
    old.write_text("#!/bin/sh\necho 0.19.0\n")
    old.chmod(old.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(KernelStartError, match="marimo 0.19.0 .* not supported"):
        await bare_session(room, tmp_path, str(old)).start([])
    assert room.statuses[-1][0] == "dead"
    with pytest.raises(KernelStartError, match="not found"):
        await bare_session(room, tmp_path, str(tmp_path / "nope")).run([])
    no_marimo = tmp_path / "python-without-marimo"
    no_marimo.write_text("#!/bin/sh\nexit 1\n")
    no_marimo.chmod(no_marimo.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(KernelStartError, match="not installed"):
        await bare_session(room, tmp_path, str(no_marimo)).start([])


async def test_kernel_dying_or_hanging_at_startup_is_reported(room, tmp_path):
    dies = fake_python(tmp_path, "dies", "echo 'No module named zmq' >&2\nexit 3")
    with pytest.raises(KernelStartError, match="(?s)exited with code 3.*No module named zmq"):
        await bare_session(room, tmp_path, dies).start([])
    assert room.statuses[-1][0] == "dead"

    hangs = fake_python(tmp_path, "hangs", "echo $$ > hung.pid\nexec sleep 60")
    session = bare_session(room, tmp_path, hangs, startup_timeout=1)
    with pytest.raises(KernelStartError, match="did not become ready within 1 s"):
        await session.start([])
    hung = int((tmp_path / "hung.pid").read_text())
    await room.until(lambda: not alive(hung), timeout=5)


@pytest.mark.skipif(sys.platform == "win32", reason="process groups")
async def test_kernel_runs_in_the_given_cwd(room, session, tmp_path):
    here = CellCode(id="cwd", code="import os\nos.getcwd()")
    snap = await run_and_settle(room, session, [here])
    assert os.path.basename(tmp_path) in output_text(snap, "cwd")
