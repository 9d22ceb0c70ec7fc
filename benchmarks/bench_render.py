"""Rendering: time to every output painted, and browser memory, ours against `marimo edit`.

`python -m benchmarks.bench_render [--reps 5] [--quick]` (from the repository, in the project's
venv; needs /usr/bin/chromium). One 60-cell notebook (10 matplotlib figures, 5 altair charts,
5 `mo.ui.table`s of 10,000 rows, 20 sliders, markdown and text), the same run, taking turns:

- **ours**: JupyterLab with the extension (tests/browser_harness.py `start_lab`); a runner
  (`CollabClient`, rita) runs every cell once and stays in the room. Each repetition opens the
  notebook in a fresh browser and times `goto` → every output painted in the output frame.
- **marimo**: `marimo edit` on a copy of the same file, fresh per repetition. Tab 1 opens it and
  clicks Run all (marimo 0.25 does not run cells on open); tab 2, opened after tab 1 closed,
  resumes that session, whose outputs already exist: the figure compared with ours.
- **memory**: PSS summed over every Chromium process of a browser that shows one page, after
  painting, a settle and a GC: about:blank, JupyterLab without a notebook, JupyterLab with the
  notebook, marimo's page (tab 2). Dirty pages are the figure compared (`browser_memory`).

Prints markdown tables; writes benchmarks/results/render-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.async_api import Error as PlaywrightError

from marimo_collab_ext.client import CollabClient
from tests.browser_harness import chromium, notebook_url, start_lab

from .bench_kernel import MarimoEdit
from .procstat import cpu_seconds, machine, machine_busy_seconds

RESULTS = Path(__file__).resolve().parent / "results"
NOTEBOOK = "render60.py"
KINDS = {"plot": 10, "chart": 5, "table": 5, "slider": 20, "text": 17}  # + 3 cells, 60 in all
TABLE_ROWS = 10_000
VIEWPORT = {"width": 1300, "height": 900}
POLL_S = 0.05
SETTLE_S = 3.0
TIMEOUT_S = 240.0
MEMORY_GOAL = 1.5  # what the notebook adds to our page, over marimo's page
OUR_BOX = '[data-mc-output="ID"]'  # docs/widgets.md, in the output frame
MARIMO_BOX = "#output-ID"  # marimo's edit page
RUN_ALL = "[data-testid=chrome-controls-bottom-right] [data-testid=run-button]"


# -- the notebook -----------------------------------------------------------------------------


def _cell(body: str, refs: tuple[str, ...] = (), returns: tuple[str, ...] = ()) -> str:
    lines = "".join(f"    {line}\n" for line in body.splitlines())
    ret = f"    return ({', '.join(returns)},)\n" if returns else "    return\n"
    return f"\n\n@app.cell\ndef _({', '.join(refs)}):\n{lines}{ret}"


def _plot(k: int) -> str:
    return _cell(f"""_x = np.linspace(0, 10, 400)
_fig, _ax = plt.subplots(figsize=(6, 2.5))
_ax.plot(_x, np.sin(_x * {k + 1} / 3) * np.exp(-_x / {10 + k}))
_ax.set_title("Figure {k + 1}")
_fig""", ("np", "plt"))


def _chart(k: int) -> str:
    return _cell(f"""_rng = np.random.default_rng({k})
_df = pd.DataFrame({{"x": np.arange(300), "y": _rng.normal(size=300).cumsum(),
                    "series": np.where(np.arange(300) % 2 == 0, "even", "odd")}})
alt.Chart(_df).mark_line().encode(x="x", y="y", color="series:N").properties(
    width=500, height=200, title="Chart {k + 1}")""", ("alt", "np", "pd"))


def _table(k: int) -> str:
    return _cell(f"""_rng = np.random.default_rng({100 + k})
_n = {TABLE_ROWS}
_df = pd.DataFrame({{"id": np.arange(_n), "value": _rng.normal(size=_n).round(4),
                    "category": np.array(["alpha", "beta", "gamma", "delta"])[
                        _rng.integers(0, 4, _n)],
                    "count": _rng.integers(0, 1000, _n)}})
table_{k} = mo.ui.table(_df, label="Table {k + 1}")
table_{k}""", ("mo", "np", "pd"), (f"table_{k}",))


def _slider(k: int) -> str:
    return _cell(f"""slider_{k} = mo.ui.slider(0, 100, value={k * 7 % 100}, label="Slider {k + 1}")
slider_{k}""", ("mo",), (f"slider_{k}",))


def _text(k: int) -> str:
    if k % 2:
        return _cell(f'"Note {k + 1}: " + ", ".join(str(i * i) for i in range({k + 3}))')
    return _cell(f'''mo.md("""
## Section {k // 2 + 1}

Paragraph {k + 1}: some **bold** text, a list, and `code`.

- item one
- item two
""")''', ("mo",))


MAKERS = {"plot": _plot, "chart": _chart, "table": _table, "slider": _slider, "text": _text}


def notebook() -> tuple[str, list[str]]:
    """The notebook's text and each cell's kind in order ("none": a cell without output).

    `import marimo as mo`, one cell of library imports, then the kinds spread evenly through
    the notebook, and a last markdown cell: 60 cells, 58 with an output.
    """
    spots = sorted(((i + 0.5) / n, kind, i) for kind, n in KINDS.items() for i in range(n))
    body = _cell("import marimo as mo", returns=("mo",))
    body += _cell("import altair as alt\nimport matplotlib.pyplot as plt\nimport numpy as np\n"
                  "import pandas as pd", returns=("alt", "np", "pd", "plt"))
    body += "".join(MAKERS[kind](i) for _, kind, i in spots)
    body += _cell('mo.md("The end.")', ("mo",))
    kinds = ["none", "none"] + [kind for _, kind, _ in spots] + ["text"]
    return ('import marimo\n\n__generated_with = "0.25.2"\napp = marimo.App(width="medium")\n'
            + body + '\n\nif __name__ == "__main__":\n    app.run()\n'), kinds


# -- "every output painted", one predicate for both pages -------------------------------------

# Argument: {cells: [[cell id, or its position among the page's cells, kind], ...], box: a
# selector with ID for the cell id}. A cell's box must exist and show something (text, an image,
# a drawing); every custom element it shows (through open shadow roots; a host's own children
# only when its shadow tree has a <slot>, as tests/browser_harness.py reads text) must be
# :defined; every <img> loaded; a plot has an image, a chart a vega canvas or svg with a size, a
# table body rows with cells, a slider its role=slider thumb.
PAINTED = r"""({cells, box: selector}) => {
  const app = !!customElements.get('marimo-ui-element');
  let order = null;
  if (cells.some(([key]) => typeof key === 'number')) {
    order = [...new Set(Array.from(document.querySelectorAll('[data-cell-id]'),
                                   (e) => e.dataset.cellId))];
    if (order.length <= Math.max(...cells.map(([key]) => key))) {
      return {done: false, app, boxes: 0, left: cells.length, pending: ['cells not listed'],
              kinds: []};
    }
  }
  const counts = {img: 0, chart: 0, table: 0, rows: 0, slider: 0, custom: 0};
  const every = (root) => {
    const found = [];
    const walk = (node) => {
      if (node.nodeType === Node.ELEMENT_NODE) {
        if (node.localName === 'style' || node.localName === 'script') return;
        found.push(node);
      }
      // A shadow host shows its shadow tree, and its own children only through a <slot>.
      if (node.shadowRoot) walk(node.shadowRoot);
      if (!node.shadowRoot || node.shadowRoot.querySelector('slot')) node.childNodes.forEach(walk);
    };
    walk(root);
    return found;
  };
  const problem = (box, kind) => {
    const els = every(box);
    const undef = els.find((el) => el.localName.includes('-') && !el.matches(':defined'));
    if (undef) return 'undefined ' + undef.localName;
    const imgs = els.filter((el) => el.localName === 'img');
    if (imgs.some((img) => !(img.complete && img.naturalWidth > 0))) return 'image loading';
    const drawn = els.filter((el) => (el.localName === 'canvas' || (el.localName === 'svg'
      && el.classList.contains('marks'))) && el.getBoundingClientRect().width > 0);
    const rows = els.filter((el) => el.localName === 'tr' && el.parentNode.localName === 'tbody'
      && el.querySelectorAll('td').length > 1 && el.textContent.trim());
    const sliders = els.filter((el) => el.getAttribute('role') === 'slider');
    const text = els.some((el) => Array.from(el.childNodes).some(
      (c) => c.nodeType === Node.TEXT_NODE && c.textContent.trim()));
    if (kind === 'plot' && !imgs.length) return 'no image';
    if (kind === 'chart' && !drawn.length) return 'chart not drawn';
    if (kind === 'table' && !rows.length) return 'no table rows';
    if (kind === 'slider' && !sliders.length) return 'no slider';
    if (!text && !imgs.length && !drawn.length) return 'empty';
    counts.img += imgs.length;
    counts.chart += drawn.length ? 1 : 0;
    counts.table += rows.length ? 1 : 0;
    counts.rows += rows.length;
    counts.slider += sliders.length;
    counts.custom += els.filter((el) => el.localName.includes('-')).length;
    return null;
  };
  const pending = [];
  const late = new Set();
  let boxes = 0;
  for (const [key, kind] of cells) {
    const id = order ? order[key] : key;
    const box = document.querySelector(selector.replace('ID', CSS.escape(id)));
    boxes += box ? 1 : 0;
    const why = box ? problem(box, kind) : 'no box';
    if (why) {
      pending.push(`${id} (${kind}): ${why}`);
      late.add(kind);
    }
  }
  return {done: !pending.length, app, boxes, left: pending.length, pending: pending.slice(0, 4),
          kinds: [...late], counts};
}"""


async def wait_painted(find_frame, cells: list, selector: str, t0: float) -> dict:
    """Poll PAINTED every POLL_S in the frame `find_frame()` gives; times are from `t0`.

    Milestones: the frame exists (ours: JupyterLab has made the output frame), marimo's app
    has registered its elements (in the frame or page), the first box, every box, every output
    painted; and per kind of output, when its last one painted.
    """
    marks: dict[str, float] = {}
    kinds_done: dict[str, float] = {}
    last = None
    while True:
        try:
            frame = await find_frame()
            if frame is not None:
                marks.setdefault("frame_s", time.monotonic() - t0)
            last = None if frame is None else await frame.evaluate(
                PAINTED, {"cells": cells, "box": selector})
        except PlaywrightError:
            last = None  # the page or frame is (re)loading
        now = time.monotonic() - t0
        if last is not None:
            if last["app"]:
                marks.setdefault("app_s", now)
            if last["boxes"]:
                marks.setdefault("first_box_s", now)
            if last["boxes"] == len(cells):
                marks.setdefault("all_boxes_s", now)
                for kind in {k for _, k in cells} - set(last["kinds"]):
                    kinds_done.setdefault(kind, now)
            if last["done"]:
                return {"painted_s": now, **marks, "kinds_painted_s": kinds_done,
                        "counts": last["counts"]}
        if now > TIMEOUT_S:
            raise TimeoutError(f"not every output painted after {TIMEOUT_S:.0f} s: {last}")
        await asyncio.sleep(POLL_S)


# -- processes: Chromium's memory, CPU of what this run started, everyone else's -------------


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found += children.get(pid, [])
        todo += children.get(pid, [])
    return found


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def chromium_pids() -> list[int]:
    return [p for p in _descendants(os.getpid()) if _comm(p).startswith("chrom")]


def browser_memory() -> dict:
    """PSS (MB) summed over this process's Chromium descendants: all, and dirty pages only.

    Call it with one browser open: every Chromium process this run started is that browser's.
    Dirty pages (anonymous, shared memory, written files) are what the pages use; the clean
    file-backed rest (Chromium's binary, libraries, fonts) is shared with every other Chromium
    on the machine, so its PSS share moves with the colleagues' browsers (80-220 MB measured).
    """
    pss = dirty = 0
    pids = chromium_pids()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                fields = {k: int(v.split()[0]) for k, v in
                          (line.split(":", 1) for line in f if line[0].isupper())}
        except (OSError, ValueError):
            continue
        pss += fields.get("Pss", 0)
        dirty += fields.get("Pss_Dirty", 0)
    return {"pss_mb": pss / 1024, "pss_dirty_mb": dirty / 1024, "processes": len(pids)}


async def no_browser_left(timeout: float = 20) -> None:
    """Wait until the previous browser's processes are gone (memory is counted per browser)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not chromium_pids():
            return
        await asyncio.sleep(0.1)


class CpuWindow:
    """CPU over a measurement: this run's processes (browser, servers, kernels) and the rest.

    A process that starts inside the window counts from zero; one that ends inside it is lost
    (none of ours ends between `goto` and painted).
    """

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.busy = machine_busy_seconds()
        self.before = self._tree()

    @staticmethod
    def _tree() -> dict[int, float]:
        times = {}
        for pid in _descendants(os.getpid()) + [os.getpid()]:
            try:
                times[pid] = cpu_seconds(pid)
            except (OSError, IndexError, ValueError):
                pass
        return times

    def stop(self) -> dict:
        wall = time.monotonic() - self.start
        after = self._tree()
        own = sum(cpu - self.before.get(pid, 0.0) for pid, cpu in after.items())
        busy = machine_busy_seconds() - self.busy
        return {"own_cpu_s": own, "other_cpu_util": max(0.0, busy - own) / wall}


async def settled_memory(context, page) -> dict:
    """Browser memory once the page is quiet: a settle, then a GC in every frame's process."""
    await asyncio.sleep(SETTLE_S)
    for target in [page] + page.frames[1:]:
        try:
            session = await context.new_cdp_session(target)
            await session.send("HeapProfiler.collectGarbage")
            await session.detach()
        except PlaywrightError:
            pass  # a frame in its parent's process: collected with the page
    await asyncio.sleep(0.5)
    return browser_memory()


def count_requests(context, frame_part: str | None = None) -> dict:
    """Requests of every frame, of the frame whose URL has `frame_part`, and its page loads."""
    counts = {"requests": 0, "frame_requests": 0, "frame_loads": 0}

    def seen(request) -> None:
        counts["requests"] += 1
        if frame_part and frame_part in request.url and request.resource_type == "document":
            counts["frame_loads"] += 1
        try:
            if frame_part and frame_part in request.frame.url:
                counts["frame_requests"] += 1
        except PlaywrightError:
            pass

    context.on("request", seen)
    return counts


# -- ours -------------------------------------------------------------------------------------


async def run_everything(lab, kinds: list[str]) -> tuple[CollabClient, list, float]:
    """A runner runs every cell once; returns it (it stays), the cells with outputs, the time.

    Done when the kernel is idle and a fresh join's snapshot holds every expected output.
    """
    runner = await CollabClient.connect(lab.url, NOTEBOOK, token="rita-token")
    cells = [[cid, kind] for cid, kind in zip(runner.order, kinds, strict=True) if kind != "none"]
    t0 = time.monotonic()
    await runner.run(runner.order)
    while True:
        try:
            await runner.next_event(lambda e: e["type"] == "kernel_status"
                                    and e["status"] == "idle", timeout=5)
        except TimeoutError:
            pass
        probe = await CollabClient.connect(lab.url, NOTEBOOK, token="rita-token")
        kernel = probe.join_response["kernel"]
        await probe.close()
        outputs = kernel.get("outputs") or {}
        ready = [cid for cid, _ in cells
                 if ((outputs.get(cid) or {}).get("output") or {}).get("data")]
        if kernel.get("status") == "idle" and len(ready) == len(cells):
            return runner, cells, time.monotonic() - t0
        if time.monotonic() - t0 > TIMEOUT_S:
            raise TimeoutError(f"{len(ready)} of {len(cells)} outputs after {TIMEOUT_S:.0f} s")


async def keep_alive(runner: CollabClient) -> None:
    """Heartbeats, so the server never drops the runner between repetitions."""
    while True:
        await asyncio.sleep(30)
        await runner.request({"type": "heartbeat"})


async def ours_once(lab, cells: list) -> dict:
    """A fresh browser opens the notebook: goto → every output painted in the output frame."""
    await no_browser_left()
    async with chromium() as browser:
        context = await browser.new_context(viewport=VIEWPORT)
        requests = count_requests(context, "/marimo-collab/frontend")
        page = await context.new_page()

        async def output_frame():
            element = await page.query_selector("iframe.jp-MarimoCollab-outputFrame")
            return await element.content_frame() if element else None

        window = CpuWindow()
        t0 = time.monotonic()
        await page.goto(notebook_url(lab, "rita", NOTEBOOK), wait_until="commit")
        result = await wait_painted(output_frame, cells, OUR_BOX, t0)
        result.update(window.stop(), **requests)
        result["memory"] = await settled_memory(context, page)
    return result


async def lab_alone_memory(lab) -> dict:
    """JupyterLab with no notebook open (its launcher), in a browser of its own."""
    await no_browser_left()
    async with chromium() as browser:
        context = await browser.new_context(viewport=VIEWPORT)
        page = await context.new_page()
        await page.goto(f"{lab.url}lab/workspaces/rita-empty?token=rita-token")
        await page.wait_for_selector(".jp-Launcher", timeout=TIMEOUT_S * 1000)
        return await settled_memory(context, page)


async def blank_memory() -> dict:
    await no_browser_left()
    async with chromium() as browser:
        context = await browser.new_context(viewport=VIEWPORT)
        page = await context.new_page()
        await page.goto("about:blank")
        return await settled_memory(context, page)


# -- marimo edit ------------------------------------------------------------------------------


async def marimo_once(path: Path, positions: list) -> dict:
    """A fresh `marimo edit`: tab 1 runs all (cold), tab 2 resumes the session (late joiner)."""
    server = MarimoEdit(str(path))
    try:
        await server.wait_up()
        await no_browser_left()
        async with chromium() as browser:
            context = await browser.new_context(viewport=VIEWPORT)
            page = await context.new_page()
            window = CpuWindow()
            t0 = time.monotonic()
            await page.goto(server.base + "/", wait_until="commit")
            # Run all turns yellow once the kernel has the cells (stale); a click before that
            # runs nothing.
            await page.locator(RUN_ALL + ".yellow").wait_for(timeout=TIMEOUT_S * 1000)
            ready = time.monotonic() - t0
            await page.locator(RUN_ALL).click()
            first = await wait_painted(lambda: _main(page), positions, MARIMO_BOX, t0)
            first.update(window.stop(), run_all_ready_s=ready,
                         run_to_painted_s=first["painted_s"] - ready)
        # The tab is gone; marimo keeps its session (kernel, outputs) for the next to resume.
        await no_browser_left()
        async with chromium() as browser:
            context = await browser.new_context(viewport=VIEWPORT)
            requests = count_requests(context)
            page = await context.new_page()
            window = CpuWindow()
            t0 = time.monotonic()
            await page.goto(server.base + "/", wait_until="commit")
            second = await wait_painted(lambda: _main(page), positions, MARIMO_BOX, t0)
            second.update(window.stop(), **requests)
            second["memory"] = await settled_memory(context, page)
    finally:
        server.stop()
    return {"first_tab": first, "late_joiner": second}


async def _main(page):
    return page.main_frame


# -- the run ----------------------------------------------------------------------------------


async def measure(reps: int, workdir: Path) -> dict:
    text, kinds = notebook()
    # JupyterLab's workspaces (open documents) of this run only, emptied before each opening
    workspaces = workdir / "workspaces"
    os.environ["JUPYTERLAB_WORKSPACES_DIR"] = str(workspaces)  # the server inherits it
    try:
        lab = start_lab(workdir)
    finally:
        del os.environ["JUPYTERLAB_WORKSPACES_DIR"]
    marimo_copy = workdir / "marimo" / NOTEBOOK
    marimo_copy.parent.mkdir()
    marimo_copy.write_text(text)
    positions = [[i, kind] for i, kind in enumerate(kinds) if kind != "none"]
    out: dict = {"ours": [], "marimo": [], "blank": [], "lab_alone": []}
    try:
        (lab.root / NOTEBOOK).write_text(text)
        runner, cells, run_s = await run_everything(lab, kinds)
        heartbeat = asyncio.ensure_future(keep_alive(runner))
        out["ours_run_all_s"] = run_s
        print(f"runner ran {len(kinds)} cells in {run_s:.1f} s; {len(cells)} outputs", flush=True)
        try:
            for rep in range(reps):
                # Alternate who goes first, so both meet the machine's load alike.
                for side in (("ours", "marimo") if rep % 2 == 0 else ("marimo", "ours")):
                    if side == "ours":
                        shutil.rmtree(workspaces, ignore_errors=True)
                        out["ours"].append(await ours_once(lab, cells))
                        out["lab_alone"].append(await lab_alone_memory(lab))
                    else:
                        out["marimo"].append(await marimo_once(marimo_copy, positions))
                        out["blank"].append(await blank_memory())
                    print(f"rep {rep + 1}/{reps} {side}: {_brief(side, out[side][-1])}",
                          flush=True)
        finally:
            heartbeat.cancel()
            await runner.close()
    finally:
        lab.stop()
    return out


def _brief(side: str, r: dict) -> str:
    if side == "ours":
        return f"painted {r['painted_s']:.2f} s, {r['memory']['pss_dirty_mb']:.0f} MB"
    late = r["late_joiner"]
    return (f"tab 1 {r['first_tab']['painted_s']:.2f} s, late joiner {late['painted_s']:.2f} s,"
            f" {late['memory']['pss_dirty_mb']:.0f} MB")


# -- report -----------------------------------------------------------------------------------


def _spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """median (min–max)."""
    if not values:
        return "–"
    med, lo, hi = statistics.median(values), min(values), max(values)
    return f"{fmt.format(med)} ({fmt.format(lo)}–{fmt.format(hi)})"


def _memory_figures(out: dict, key: str) -> dict:
    """MB the notebook adds to our page, marimo's page, ours whole; medians over repetitions."""
    med = statistics.median
    ours = [o["memory"][key] for o in out["ours"]]
    theirs = [m["late_joiner"]["memory"][key] for m in out["marimo"]]
    added = med(o - a[key] for o, a in zip(ours, out["lab_alone"], strict=True))
    page = med(t - b[key] for t, b in zip(theirs, out["blank"], strict=True))
    whole = med(o - b[key] for o, b in zip(ours, out["blank"], strict=True))
    return {"notebook_adds_mb": added, "marimo_page_mb": page, "ours_whole_mb": whole,
            "ratio": added / page, "ratio_whole": whole / page}


def summary(out: dict) -> dict:
    med = statistics.median
    ours = med(o["painted_s"] for o in out["ours"])
    return {"painted_s": {"ours": ours,
                          "marimo_late_joiner": med(m["late_joiner"]["painted_s"]
                                                    for m in out["marimo"]),
                          "marimo_first_tab": med(m["first_tab"]["painted_s"]
                                                  for m in out["marimo"])},
            "memory_dirty": _memory_figures(out, "pss_dirty_mb"),
            "memory_pss": _memory_figures(out, "pss_mb")}


def table(out: dict) -> str:
    ours, theirs = out["ours"], [m["late_joiner"] for m in out["marimo"]]
    first = [m["first_tab"] for m in out["marimo"]]
    s = summary(out)

    def col(rows: list[dict], key: str, fmt: str = "{:.2f}", scale: float = 1) -> str:
        return _spread([scale * r[key] for r in rows if r.get(key) is not None], fmt)

    lines = [f"{len(ours)} repetitions, median (min–max); seconds from `goto`. Ours: a fresh"
             " browser opens the notebook in JupyterLab; marimo's late joiner: a tab opened after"
             " the first one ran everything and closed; marimo's tab 1 opens the notebook and"
             " clicks Run all.", "",
             "| measurement | ours | marimo, late joiner (tab 2) | marimo, tab 1 (runs all) |",
             "|---|---|---|---|",
             f"| **every output painted** | {col(ours, 'painted_s')} |"
             f" {col(theirs, 'painted_s')} | {col(first, 'painted_s')} |"]
    lines.append(f"| output frame created (JupyterLab shows the notebook) | {col(ours, 'frame_s')}"
                 " | – | – |")
    for label, key in (("marimo's elements registered (ours: in the output frame)", "app_s"),
                       ("first output box", "first_box_s"),
                       ("every output box present", "all_boxes_s")):
        lines.append(f"| {label} | {col(ours, key)} | {col(theirs, key)} | – |")
    for kind in KINDS:
        mine = [{"t": o["kinds_painted_s"][kind]} for o in ours if kind in o["kinds_painted_s"]]
        other = [{"t": t["kinds_painted_s"][kind]} for t in theirs
                 if kind in t["kinds_painted_s"]]
        lines.append(f"| every {kind} painted | {col(mine, 't')} | {col(other, 't')} | – |")
    lines += [f"| Run all ready (yellow), clicked | – | – | {col(first, 'run_all_ready_s')} |",
              f"| click → every output painted | – | – | {col(first, 'run_to_painted_s')} |",
              f"| requests: page (all frames) | {col(ours, 'requests', '{:.0f}')} |"
              f" {col(theirs, 'requests', '{:.0f}')} | – |",
              f"| requests: output frame | {col(ours, 'frame_requests', '{:.0f}')} | – | – |",
              f"| output frame loads (its page requested) | {col(ours, 'frame_loads', '{:.0f}')}"
              " | – | – |",
              f"| CPU s, browser + servers + kernels | {col(ours, 'own_cpu_s', '{:.1f}')} |"
              f" {col(theirs, 'own_cpu_s', '{:.1f}')} | {col(first, 'own_cpu_s', '{:.1f}')} |",
              f"| other CPU (colleagues), share of one core |"
              f" {col(ours, 'other_cpu_util', '{:.0f}%', 100)} |"
              f" {col(theirs, 'other_cpu_util', '{:.0f}%', 100)} |"
              f" {col(first, 'other_cpu_util', '{:.0f}%', 100)} |"]
    shown = {k: v for k, v in ours[0]["counts"].items() if k != "custom"}
    shown_theirs = {k: v for k, v in theirs[0]["counts"].items() if k != "custom"}
    lines += ["", f"Painted, ours: {shown}; marimo: {shown_theirs} (images, charts drawn, tables"
              " with rows, table rows shown, slider thumbs).", "",
              "| browser memory, one page shown | PSS, dirty pages MB | PSS, all MB |",
              "|---|---|---|"]
    for label, mems in (("about:blank", out["blank"]),
                        ("JupyterLab, no notebook", out["lab_alone"]),
                        ("JupyterLab + the notebook (ours)", [o["memory"] for o in ours]),
                        ("marimo edit, late joiner", [t["memory"] for t in theirs])):
        lines.append(f"| {label} | {col(mems, 'pss_dirty_mb', '{:.0f}')} |"
                     f" {col(mems, 'pss_mb', '{:.0f}')} |")
    d, p = s["memory_dirty"], s["memory_pss"]
    goal = "met" if d["ratio"] <= MEMORY_GOAL else "MISSED"
    ratio = s["painted_s"]["ours"]
    lines += ["", "| ours / marimo | ratio |", "|---|---|",
              f"| every output painted, vs marimo's late joiner |"
              f" {ratio / s['painted_s']['marimo_late_joiner']:.2f} |",
              f"| every output painted, vs marimo's tab 1 (which runs the cells) |"
              f" {ratio / s['painted_s']['marimo_first_tab']:.2f} |",
              f"| memory the notebook adds (PSS, dirty): ours {d['notebook_adds_mb']:.0f} MB"
              f" (JupyterLab with − without it) / marimo's page {d['marimo_page_mb']:.0f} MB"
              f" (− about:blank) | **{d['ratio']:.2f}** (goal ≤ {MEMORY_GOAL}: {goal}) |",
              f"| the same, PSS all: {p['notebook_adds_mb']:.0f} / {p['marimo_page_mb']:.0f} MB |"
              f" {p['ratio']:.2f} |",
              f"| whole page (PSS, dirty): ours {d['ours_whole_mb']:.0f} MB (JupyterLab +"
              f" notebook − about:blank) / marimo's page | {d['ratio_whole']:.2f} |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 repetitions")
    args = parser.parse_args(argv)
    reps = 2 if args.quick else args.reps
    workdir = Path(tempfile.mkdtemp(prefix="marimo-collab-render-"))
    began = time.time()
    out = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began)),
           "machine": machine(), "reps": reps}
    try:
        out.update(asyncio.run(measure(reps, workdir)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out["runtime_s"] = time.time() - began
    out["summary"] = summary(out)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("render-" + time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(began))
                      + ".json")
    path.write_text(json.dumps(out, indent=1))
    print(table(out))
    print(f"\nresults: {path}  ({out['runtime_s']:.0f} s)", file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
