"""Outputs in real browsers: shared runs, viewers without controls, and output isolation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import Error as PlaywrightError

from marimo_collab_ext.client import CollabClient

from .browser_harness import (
    cell_ids,
    chromium,
    demo_run_by_rita,
    open_notebook,
    output_frame,
    output_text,
    screenshot,
    start_lab,
)
from .test_kernel_protocol import object_id_in

pytestmark = pytest.mark.browser

# Output script that tries everything it must not be able to do, and writes what it got.
# marimo runs no inline <script> of an output (neither does marimo itself): output script runs
# in `mo.iframe`, nested in the output frame. It probes the frame it sits in and the page above.
PROBE = '''mo.iframe("""<div id=probe>probing</div><script>
const seen = [];
function attempt(name, f) { try { seen.push(name + "=" + f()); }
                            catch (e) { seen.push(name + "=blocked:" + e.name); } }
attempt("cookie", () => document.cookie);
attempt("parentDom", () => parent.document.title);
attempt("pageDom", () => top.document.title);
attempt("parentToken", () => JSON.stringify(top.document.getElementById(
  "jupyter-config-data").textContent.length));
attempt("storage", () => localStorage.length);
fetch("/api/contents", {credentials: "include"})
  .then(r => seen.push("fetch=" + r.status), e => seen.push("fetch=blocked:" + e.name))
  .finally(() => { document.getElementById("probe").textContent = seen.join(";");
                   parent.postMessage({probe: seen.join(";")}, "*"); });
</script>""", height="80px")'''


@pytest.fixture
def lab(tmp_path: Path):
    server = start_lab(tmp_path)
    yield server
    server.stop()


async def probe_result(outputs, timeout: float = 60) -> str:
    """What PROBE wrote, in the mo.iframe nested in the output frame."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        for frame in outputs.child_frames:
            try:
                text = await frame.evaluate("() => document.getElementById('probe')?.textContent")
            except PlaywrightError:
                continue
            if text and "fetch=" in text:
                return text
        await asyncio.sleep(0.3)
    raise AssertionError("the probe never finished")


async def test_a_run_shows_the_same_outputs_in_both_pages(lab):
    async with chromium() as browser:
        rita = await open_notebook(browser, lab, "rita")
        eddie = await open_notebook(browser, lab, "eddie")
        cells = await cell_ids(rita)
        await rita.locator('[data-jp-item-name="run-all"] button').click()
        for page in (rita, eddie):
            assert "55" in await output_text(page, cells[4], "55")
            # marimo shows the list as a tree: index : value
            assert "0 : 1 1 : 4 2 : 9 3 : 16 4 : 25" in await output_text(page, cells[3], "25")
        await screenshot(rita, "outputs-runner")
        await screenshot(eddie, "outputs-editor")


async def test_viewer_sees_outputs_but_no_run_controls(lab):
    runner = await demo_run_by_rita(lab)
    async with chromium() as browser:
        vera = await open_notebook(browser, lab, "vera")
        cells = await cell_ids(vera)
        assert "55" in await output_text(vera, cells[4], "55")
        controls = ('[data-action="run"], [data-jp-item-name="run-all"],'
                    ' [data-jp-item-name="interrupt"]')
        assert await vera.locator(controls).count() > 0  # present, and hidden for a viewer
        for control in await vera.locator(controls).all():
            assert not await control.is_visible()
        await screenshot(vera, "outputs-viewer")
    await runner.close()


async def test_output_script_cannot_reach_the_page(lab):
    runner = await CollabClient.connect(lab.url, "demo.py", token="rita-token")
    cell = runner.order[1]
    runner.edit(cell, {"from": 0, "to": len(runner.text(cell)), "insert": PROBE})
    await runner.flush()
    async with chromium() as browser:
        eddie = await open_notebook(browser, lab, "eddie")  # another person's page
        await runner.run(runner.order[:2])
        text = await probe_result(await output_frame(eddie))
        results = dict(item.split("=", 1) for item in text.strip().split(";"))
        assert results["cookie"].startswith("blocked")
        assert results["parentDom"].startswith("blocked")  # the output frame
        assert results["pageDom"].startswith("blocked")  # JupyterLab's page
        assert results["parentToken"].startswith("blocked")
        assert results["storage"].startswith("blocked")
        assert results["fetch"] != "200"  # an opaque origin carries no credentials
        assert await eddie.title() != "pwned"
        await screenshot(eddie, "isolation")
    await runner.close()


async def test_an_output_slot_shrinks_when_its_output_does(lab):
    """The squares for 20 are a tall tree; for 1, a short one: the page follows both ways."""
    runner = await CollabClient.connect(lab.url, "demo.py", token="rita-token")
    slider_cell, squares_cell = runner.order[2], runner.order[3]
    shown = asyncio.ensure_future(runner.next_event(
        lambda e: e["type"] == "kernel" and e["op"] == "cell-op"
        and e["data"].get("cell_id") == slider_cell and (e["data"].get("output") or {}).get("data"),
        timeout=60))
    await runner.run(runner.order)
    slider = await shown
    slot = f'[data-cell-id="{squares_cell}"] .jp-MarimoCollab-output'
    async with chromium() as browser:
        eddie = await open_notebook(browser, lab, "eddie")
        object_id = object_id_in(slider["data"]["output"]["data"])
        await runner.set_ui_value(object_id, 20)
        await output_text(eddie, squares_cell, "400")
        await eddie.wait_for_timeout(1000)
        tall = await eddie.locator(slot).evaluate("e => e.offsetHeight")
        await runner.set_ui_value(object_id, 1)
        await output_text(eddie, squares_cell, "1 Item ")
        await eddie.wait_for_timeout(1000)
        short = await eddie.locator(slot).evaluate("e => e.offsetHeight")
        assert 0 < short < tall / 3, (short, tall)
    await runner.close()
