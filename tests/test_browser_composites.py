"""Composite elements, per-person table views and anywidgets across two real browsers.

Everything here is rendered by marimo's own frontend in each page's output frame; the tests
drive it as a person would and check what reaches the kernel and the other page.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from .browser_harness import cell_ids, chromium, output_text, screenshot, start_lab
from .test_browser_widgets import click_in_frame, open_path, run_all, slide_to, widget_box

pytestmark = pytest.mark.browser

COMPOSITES = textwrap.dedent('''
    import marimo

    app = marimo.App()


    @app.cell
    def _():
        import marimo as mo
        return (mo,)


    @app.cell
    def _(mo):
        inner = mo.ui.slider(1, 10, value=2, label="inner")
        tabs = mo.ui.tabs({"First": inner, "Second": mo.md("second tab")})
        arr = mo.ui.array([mo.ui.slider(0, 5, value=1), mo.ui.slider(0, 5, value=1)],
                          label="arr")
        upload = mo.ui.file(label="upload")
        mo.vstack([tabs, arr, upload])
        return arr, inner, upload


    @app.cell
    def _(arr, inner, upload):
        sent = f"{upload.name()}:{upload.contents().decode()}" if upload.value else None
        f"inner={inner.value}; arr={arr.value}; file={sent}"
        return


    @app.cell
    def _(mo):
        big = mo.ui.table([{"i": i, "sq": i * i} for i in range(1000)], page_size=10,
                          label="big")
        big
        return


    @app.cell
    def _(mo):
        import anywidget
        import traitlets

        class Counter(anywidget.AnyWidget):
            _esm = """
            export default { render({ model, el }) {
              const button = document.createElement("button");
              const show = () => { button.textContent = `clicks ${model.get("count")}`; };
              button.onclick = () => { model.set("count", model.get("count") + 1);
                                       model.save_changes(); };
              model.on("change:count", show);
              show();
              el.appendChild(button);
            } }"""
            count = traitlets.Int(0).tag(sync=True)

        counter = mo.ui.anywidget(Counter())
        counter
        return (counter,)


    @app.cell
    def _(counter):
        f"counter={counter.value['count']}"
        return


    if __name__ == "__main__":
        app.run()
''')


@pytest.fixture
def lab(tmp_path: Path):
    server = start_lab(tmp_path)
    (server.root / "composites.py").write_text(COMPOSITES)
    yield server
    server.stop()


async def composites_run_by_rita(browser, lab):
    """rita (runner) and a second person on composites.py, after rita ran it all."""
    rita = await open_path(browser, lab, "rita", "composites.py")
    eddie = await open_path(browser, lab, "eddie", "composites.py")
    cells = await cell_ids(rita)
    await run_all(rita)
    assert "counter=0" in await output_text(eddie, cells[5], "counter=0")
    return rita, eddie, cells


async def test_a_slider_inside_tabs_an_array_and_an_upload_reach_the_other_page(lab):
    async with chromium() as browser:
        rita, eddie, cells = await composites_run_by_rita(browser, lab)
        box = await widget_box(rita, cells[1])
        sliders = box.get_by_role("slider")
        await slide_to(sliders.nth(0), 7)  # inside the First tab
        for page in (eddie, rita):
            # marimo steps by 1 without an explicit step: 7, never 7.2
            assert "inner=7;" in await output_text(page, cells[2], "inner=7;")
        await slide_to(sliders.nth(2), 4)  # the array's second slider
        for page in (eddie, rita):
            assert "arr=[1, 4]" in await output_text(page, cells[2], "arr=[1, 4]")
        await box.locator('input[type="file"]').set_input_files(
            files=[{"name": "hello.txt", "mimeType": "text/plain", "buffer": b"hi there"}])
        for page in (eddie, rita):
            assert "file=hello.txt:hi there" in await output_text(page, cells[2], "hello.txt")
        theirs = (await widget_box(eddie, cells[1])).get_by_role("slider")
        assert await theirs.nth(0).get_attribute("aria-valuenow") == "7"
        assert await theirs.nth(2).get_attribute("aria-valuenow") == "4"
        await screenshot(eddie, "composites-editor")


async def test_a_viewer_pages_and_searches_a_table_for_herself(lab):
    async with chromium() as browser:
        rita, _, cells = await composites_run_by_rita(browser, lab)
        vera = await open_path(browser, lab, "vera", "composites.py")
        table = await widget_box(vera, cells[3])
        assert "Page" in await output_text(vera, cells[3], "of 100")
        await click_in_frame(table.get_by_role("button", name="Next page", exact=True))
        paged = await output_text(vera, cells[3], "Page 2 of 100")
        assert " 10 100 " in paged and " 19 361 " in paged and " 9 81 " not in paged
        await table.get_by_placeholder("Search...").fill("999")
        assert "1 row" in await output_text(vera, cells[3], "998,001")  # 999 * 999, alone
        # the runner's table did not move
        mine = await output_text(rita, cells[3], "of 100")
        assert " 9 81 " in mine and "998,001" not in mine
        await screenshot(vera, "table-viewer")


async def test_an_anywidget_counter_is_shared(lab):
    async with chromium() as browser:
        rita, eddie, cells = await composites_run_by_rita(browser, lab)
        widget = await widget_box(rita, cells[4])
        for _ in range(2):
            await click_in_frame(widget.get_by_role("button", name="clicks", exact=False))
        for page in (rita, eddie):
            assert "counter=2" in await output_text(page, cells[5], "counter=2")
        assert "clicks 2" in await output_text(eddie, cells[4], "clicks 2")
