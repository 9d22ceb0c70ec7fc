"""Interactive marimo UI elements in real browsers: one runner moves a control, everyone follows.

The controls are marimo's own components, rendered by marimo's frontend in the notebook's
sandboxed output frame (docs/widgets.md); these tests drive them as a person would, through
Playwright's frame API (its locators reach into marimo's shadow roots), and check that the
kernel recomputed the dependent cells on another person's page.
"""

from __future__ import annotations

import asyncio
import functools
import textwrap
from pathlib import Path

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page

from .browser_harness import (
    cell_ids,
    chromium,
    notebook_url,
    open_notebook,
    output_box,
    output_frame,
    output_text,
    screenshot,
    start_lab,
)

pytestmark = pytest.mark.browser

# Every widget kind the runtime upgrades, each feeding one line of the last cell's output.
WIDGETS = textwrap.dedent('''
    import marimo

    app = marimo.App()


    @app.cell
    def _():
        import marimo as mo
        return (mo,)


    @app.cell
    def _(mo):
        number = mo.ui.number(0, 100, value=3, label="number")
        text = mo.ui.text(value="hi", label="text")
        area = mo.ui.text_area(value="a", label="area")
        check = mo.ui.checkbox(label="check")
        switch = mo.ui.switch(label="switch")
        drop = mo.ui.dropdown(["red", "green", "blue"], value="red", label="drop")
        radio = mo.ui.radio(["x", "y"], value="x", label="radio")
        multi = mo.ui.multiselect(["a", "b", "c"], label="multi")
        button = mo.ui.button(value=0, on_click=lambda v: v + 1, label="press")
        run = mo.ui.run_button(label="go")
        rng = mo.ui.range_slider(0, 10, value=[2, 5], label="rng")
        day = mo.ui.date(value="2024-01-02", label="day")
        table = mo.ui.table([{"name": "ann"}, {"name": "bob"}, {"name": "cy"}], label="table")
        mo.vstack([number, text, area, check, switch, drop, radio, multi, button, run, rng,
                   day, table])
        return area, button, check, day, drop, multi, number, radio, rng, run, switch, table, text


    @app.cell
    def _(area, button, check, day, drop, multi, number, radio, rng, run, switch, table, text):
        rows = [r["name"] for r in table.value]
        "; ".join([f"number={number.value}", f"text={text.value}", f"area={area.value}",
                   f"check={check.value}", f"switch={switch.value}", f"drop={drop.value}",
                   f"radio={radio.value}", f"multi={multi.value}", f"button={button.value}",
                   f"run={run.value}", f"rng={rng.value}", f"day={day.value}", f"table={rows}"])
        return


    if __name__ == "__main__":
        app.run()
''')


@pytest.fixture
def lab(tmp_path: Path):
    server = start_lab(tmp_path)
    (server.root / "widgets.py").write_text(WIDGETS)
    yield server
    server.stop()


async def open_path(browser, lab, person: str, path: str) -> Page:
    """Like open_notebook, for another notebook, in a workspace of its own (one per notebook).

    JupyterLab keeps workspaces beyond one server: in the person's usual one,
    demo.py from earlier tests would open too (two documents, two cell lists).
    """
    # Tall enough to show every control without scrolling (see click_in_frame).
    context = await browser.new_context(viewport={"width": 1300, "height": 1500})
    page = await context.new_page()
    url = notebook_url(lab, person, path).replace(f"/workspaces/{person}/",
                                                  f"/workspaces/{person}-{Path(path).stem}/")
    await page.goto(url)
    await page.wait_for_selector('[data-connection-status="connected"]', timeout=60_000)
    # attached: a viewer starts in the app view, where the code is hidden
    await page.wait_for_selector("[data-cell-id] .cm-editor", state="attached", timeout=60_000)
    await page.evaluate(COUNT_MISROUTED_CLICKS)
    return page


# Clicks meant for a frame that the page itself received (their target is the <iframe>).
COUNT_MISROUTED_CLICKS = """() => {
    window.misroutedClicks = 0;
    document.addEventListener('pointerdown', event => {
        if (event.target instanceof HTMLIFrameElement) window.misroutedClicks += 1;
    }, true);
}"""


async def click_in_frame(target: Locator) -> None:
    """Click a control in an output frame; again if Chromium gave the click to the page.

    Just after a frame scrolled, moved or grew, Chromium can route a click at it to
    the page (to the <iframe> element) instead of the out-of-process frame, and the
    control never sees it. A click the page received did not reach the frame, so
    repeating it cannot count a press twice. (open_path installs the counter.)
    """
    page = target.page
    for _ in range(5):
        before = await page.evaluate("window.misroutedClicks")
        await target.click()
        if await page.evaluate("window.misroutedClicks") == before:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("Chromium gave five clicks in a row to the page, not the frame")


async def widget_box(page: Page, cell_id: str, timeout: float = 60) -> Locator:
    """The cell's output box in the output frame, once marimo upgraded its first element."""
    box = output_box(await output_frame(page, timeout), cell_id)
    await box.locator("marimo-ui-element").first.wait_for(state="attached", timeout=timeout * 1000)
    return box


async def slide_to(slider: Locator, target: int) -> None:
    """Move a marimo slider (a slider role) with the keyboard, as a person can."""
    await slider.focus()
    for _ in range(100):
        now = int(float(await slider.get_attribute("aria-valuenow")))
        if now == target:
            return
        await slider.press("ArrowRight" if now < target else "ArrowLeft")
    raise AssertionError(f"the slider did not reach {target}")


async def slider_value(slider: Locator) -> str:
    return str(int(float(await slider.get_attribute("aria-valuenow"))))


async def is_locked(control: Locator) -> bool:
    """Disabled the way marimo's components say it (native, ARIA or Radix's data-disabled)."""
    return (await control.is_disabled() or await control.get_attribute("aria-disabled") == "true"
            or await control.get_attribute("data-disabled") is not None)


async def run_all(page: Page) -> None:
    await page.locator('[data-jp-item-name="run-all"] button').click()


async def eventually(probe, expected, timeout: float = 30):
    """Poll `probe()` until it returns `expected` (frames re-render while we look)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = await probe()
        except PlaywrightError as error:
            last = error
        if last == expected:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"expected {expected!r}, last saw {last!r}")


async def demo_run_by_rita(browser, lab) -> tuple[Page, Page, str, str]:
    """rita (runner) and eddie (editor) on the demo after rita ran it: slider 5, sum 55."""
    rita = await open_notebook(browser, lab, "rita")
    eddie = await open_notebook(browser, lab, "eddie")
    cells = await cell_ids(rita)
    slider_cell, sum_cell = cells[2], cells[4]
    await run_all(rita)
    for page in (rita, eddie):
        assert "55" in await output_text(page, sum_cell, "55")
    return rita, eddie, slider_cell, sum_cell


async def test_slider_moves_for_everyone_and_the_sum_recomputes(lab):
    async with chromium() as browser:
        rita, eddie, slider_cell, sum_cell = await demo_run_by_rita(browser, lab)

        slider = (await widget_box(rita, slider_cell)).get_by_role("slider")
        assert not await is_locked(slider)
        await slide_to(slider, 9)  # 1 + 4 + ... + 81

        for page in (eddie, rita):
            assert "285" in await output_text(page, sum_cell, "285")
        theirs = (await widget_box(eddie, slider_cell)).get_by_role("slider")
        await eventually(lambda: slider_value(theirs), "9")
        assert await is_locked(theirs)  # an editor sees values but cannot set them

        # Someone arriving later gets the value from the join snapshot, read-only.
        vera = await open_notebook(browser, lab, "vera")
        assert "285" in await output_text(vera, sum_cell, "285")
        hers = (await widget_box(vera, slider_cell)).get_by_role("slider")
        await eventually(lambda: slider_value(hers), "9")
        assert await is_locked(hers)
        await screenshot(rita, "widgets-slider-runner")
        await screenshot(vera, "widgets-slider-viewer")


async def test_rerunning_the_slider_cell_resets_it_for_everyone(lab):
    """A rerun re-creates the element (new random-id): its initial value, not a stored one."""
    async with chromium() as browser:
        rita, eddie, slider_cell, sum_cell = await demo_run_by_rita(browser, lab)
        await slide_to((await widget_box(rita, slider_cell)).get_by_role("slider"), 9)
        assert "285" in await output_text(eddie, sum_cell, "285")
        await rita.locator(f'[data-cell-id="{slider_cell}"] [data-action="run"]').click()
        for page in (eddie, rita):
            assert "55" in await output_text(page, sum_cell, "55")
            slider = (await widget_box(page, slider_cell)).get_by_role("slider")
            await eventually(functools.partial(slider_value, slider), "5")
        # A page opened now gets the kernel's value, not the one set before the rerun.
        vera = await open_notebook(browser, lab, "vera")
        slider = (await widget_box(vera, slider_cell)).get_by_role("slider")
        await eventually(lambda: slider_value(slider), "5")


async def test_a_viewers_frame_cannot_set_a_value(lab):
    """Even a frame that enables its controls and posts itself gets nowhere for a viewer."""
    async with chromium() as browser:
        rita = await open_notebook(browser, lab, "rita")
        vera = await open_notebook(browser, lab, "vera")
        cells = await cell_ids(rita)
        await run_all(rita)
        assert "55" in await output_text(vera, cells[4], "55")
        await widget_box(vera, cells[2])
        frame = await output_frame(vera)
        await frame.evaluate("""cellId => {
            const host = document.querySelector(`[data-mc-output="${cellId}"] marimo-mime-renderer`)
                .shadowRoot.querySelector('marimo-ui-element');
            parent.postMessage({type: 'mc:set-ui-values',
                                objectIds: [host.getAttribute('object-id')], values: [3]}, '*');
        }""", cells[2])
        await asyncio.sleep(2)
        assert "14" not in await output_text(rita, cells[4], "55")  # 1 + 4 + 9 never computed


async def widgets_run_by_rita(browser, lab) -> tuple[Page, Page, list[str]]:
    """rita (runner) and eddie (editor) on widgets.py, after rita ran it all."""
    rita = await open_path(browser, lab, "rita", "widgets.py")
    eddie = await open_path(browser, lab, "eddie", "widgets.py")
    cells = await cell_ids(rita)
    await run_all(rita)
    assert "button=0" in await output_text(eddie, cells[2], "button=0")
    return rita, eddie, cells


# Records every height a cell's output slot takes (the frame's box for it lies over it).
WATCH_SLOT_HEIGHTS = """cellId => {
    const slot = document.querySelector(`[data-cell-id="${cellId}"] .jp-MarimoCollab-output`);
    window.slotHeights = [];
    new ResizeObserver(() => window.slotHeights.push(slot.offsetHeight)).observe(slot);
}"""


async def test_rapid_presses_all_count_and_the_notebook_holds_still(lab):
    """Five quick presses are five on_click calls, though the kernel is busy with the first.

    Each press reruns the last cell; its output keeps its place while it is recomputed, so
    the page does not collapse and jump under the pointer between presses.
    """
    async with chromium() as browser:
        rita, eddie, cells = await widgets_run_by_rita(browser, lab)
        await rita.evaluate(WATCH_SLOT_HEIGHTS, cells[2])
        box = await widget_box(rita, cells[1])
        for _ in range(5):
            await click_in_frame(box.get_by_role("button", name="press", exact=True))
        for page in (rita, eddie):
            assert "button=5" in await output_text(page, cells[2], "button=5")
        heights = await rita.evaluate("window.slotHeights")
        assert heights and 0 not in heights, heights


# How to drive each kind in the cell's output box: (box, the widget's label, the value to give).
async def _fill(box: Locator, label: str, value: str) -> None:
    field = box.get_by_label(label, exact=True)
    await field.fill(value)
    await field.blur()  # a change event, as when the user leaves the field


async def _number(box: Locator, label: str, value: str) -> None:
    field = box.get_by_role("textbox").first  # marimo's number field comes first in the stack
    await field.fill(value)
    await field.blur()


async def _check(box: Locator, label: str, value: str) -> None:
    await click_in_frame(box.get_by_label(label, exact=True))


async def _select(box: Locator, label: str, value: str) -> None:
    await box.get_by_label(label, exact=True).select_option(label=value)


async def _multiselect(box: Locator, label: str, value: str) -> None:
    await click_in_frame(box.get_by_text("Select...", exact=True))
    options = box.page.frame_locator("iframe.jp-MarimoCollab-outputFrame")
    for choice in value.split(","):
        await click_in_frame(options.get_by_role("option", name=choice, exact=True))
    await box.page.keyboard.press("Escape")


async def _radio(box: Locator, label: str, value: str) -> None:
    choice = box.get_by_role("radio", name=value, exact=True)
    await click_in_frame(choice)
    assert await choice.get_attribute("aria-checked") == "true"


async def _press(box: Locator, label: str, value: str) -> None:
    # As fast as a person double-clicks: each press must still count.
    for _ in range(int(value)):
        await click_in_frame(box.get_by_role("button", name=label, exact=True))


async def _range(box: Locator, label: str, value: str) -> None:
    lo, hi = value.split(",")
    await slide_to(box.get_by_role("slider", name="Maximum"), int(hi))
    await slide_to(box.get_by_role("slider", name="Minimum"), int(lo))


async def _date(box: Locator, label: str, value: str) -> None:
    # From the widget's 2024-01-02, one segment at a time with the arrow keys.
    year, month, day = (int(part) for part in value.split("-"))
    for segment, steps in (("month", month - 1), ("day", day - 2), ("year", year - 2024)):
        field = box.locator(f'[role="spinbutton"][aria-label^="{segment}"]')
        await field.focus()
        for _ in range(steps):
            await field.press("ArrowUp")


async def _row(box: Locator, label: str, value: str) -> None:
    for index in value.split(","):
        row = box.get_by_role("checkbox", name="Select row").nth(int(index))
        await click_in_frame(row)
        assert await row.get_attribute("aria-checked") == "true"


CASES = {
    "number": (_number, "number", "42", "number=42"),
    "text": (_fill, "text", "hello", "text=hello"),
    "text_area": (_fill, "area", "two words", "area=two words"),
    "checkbox": (_check, "check", "", "check=True"),
    "switch": (_check, "switch", "", "switch=True"),
    "dropdown": (_select, "drop", "blue", "drop=blue"),
    "radio": (_radio, "radio", "y", "radio=y"),
    "multiselect": (_multiselect, "multi", "a,c", "multi=['a', 'c']"),
    "button": (_press, "press", "2", "button=2"),
    "run_button": (_press, "go", "1", "run=True"),
    "range_slider": (_range, "rng", "3,8", "rng=[3, 8]"),
    "date": (_date, "day", "2025-03-04", "day=2025-03-04"),
    "table": (_row, "table", "0,2", "table=['ann', 'cy']"),
}


@pytest.mark.parametrize("kind", list(CASES))
async def test_each_widget_kind_reaches_the_kernel_and_the_other_page(lab, kind):
    drive, label, value, shown = CASES[kind]
    async with chromium() as browser:
        rita, eddie, cells = await widgets_run_by_rita(browser, lab)
        await drive(await widget_box(rita, cells[1]), label, value)
        assert shown in await output_text(eddie, cells[2], shown)
        assert shown in await output_text(rita, cells[2], shown)
        if kind in ("number", "checkbox", "dropdown", "range_slider", "table"):
            await screenshot(eddie, f"widgets-{kind}")
