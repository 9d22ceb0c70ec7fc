"""Two people in one notebook in real browsers: typing, presence, roles, reconnects."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from marimo_collab_ext.client import CollabClient

from .browser_harness import (
    cell_ids,
    cell_text,
    chromium,
    demo_run_by_rita,
    open_notebook,
    output_text,
    screenshot,
    start_lab,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def lab(tmp_path: Path):
    server = start_lab(tmp_path)
    yield server
    server.stop()


async def server_text(lab, cell_id: str) -> str:
    client = await CollabClient.connect(lab.url, "demo.py", token="rita-token")
    try:
        return client.text(cell_id)
    finally:
        await client.close()


async def until(predicate, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.2)


async def type_at_end(page, cell_id: str, text: str, key: str = "Control+End") -> None:
    cell = page.locator(f'[data-cell-id="{cell_id}"]')
    if await cell.get_attribute("data-code-hidden") == "true":  # markdown: open its code first
        await cell.locator('[data-action="toggle-code"]').click()
    editor = cell.locator(".cm-content")
    await editor.click()
    await page.keyboard.press(key)
    await page.keyboard.type(text, delay=15)


async def test_two_people_type_in_one_cell_and_see_each_other(lab):
    async with chromium() as browser:
        rita = await open_notebook(browser, lab, "rita")
        eddie = await open_notebook(browser, lab, "eddie")
        cell = (await cell_ids(rita))[0]
        original = await cell_text(rita, cell)
        # the same cell, two places at once
        await asyncio.gather(type_at_end(rita, cell, " # rita was here"),
                             type_at_end(eddie, cell, "# eddie too\n", key="Control+Home"))

        async def converged() -> bool:
            texts = {await cell_text(rita, cell), await cell_text(eddie, cell)}
            return len(texts) == 1 and texts == {await server_text(lab, cell)}
        await until(converged)
        final = await cell_text(rita, cell)
        assert final == "# eddie too\n" + original + " # rita was here"

        # the same place at once: keystrokes interleave, none is lost or doubled
        await asyncio.gather(type_at_end(rita, cell, "RRRRRRRRRR"),
                             type_at_end(eddie, cell, "eeeeeeeeee"))
        await until(converged)
        added = (await cell_text(eddie, cell))[len(final):]
        assert sorted(added) == sorted("RRRRRRRRRR" + "eeeeeeeeee")

        await rita.wait_for_selector('[data-peer-username="eddie"]', timeout=10_000)
        await eddie.wait_for_selector('[data-peer-username="rita"]', timeout=10_000)
        await rita.wait_for_selector("[data-remote-peer]", timeout=10_000)
        await eddie.wait_for_selector("[data-remote-peer]", timeout=10_000)
        await screenshot(rita, "two-people-rita")
        await screenshot(eddie, "two-people-eddie")


async def test_viewer_starts_in_the_app_view_and_may_switch(lab):
    """marimo's run layout for viewers: outputs only, until they ask for the code."""
    runner = await demo_run_by_rita(lab)
    async with chromium() as browser:
        vera = await open_notebook(browser, lab, "vera")
        eddie = await open_notebook(browser, lab, "eddie")
        cells = await cell_ids(vera)
        assert await vera.get_attribute(".jp-MarimoCollab", "data-view") == "app"
        assert await eddie.get_attribute(".jp-MarimoCollab", "data-view") == "notebook"
        assert "55" in await output_text(vera, cells[4], "55")
        assert not await vera.locator(f'[data-cell-id="{cells[2]}"] .cm-editor').is_visible()
        assert await eddie.locator(f'[data-cell-id="{cells[2]}"] .cm-editor').is_visible()
        await screenshot(vera, "app-view-viewer")
        await vera.locator('[data-jp-item-name="view"] button').click()
        assert await vera.get_attribute(".jp-MarimoCollab", "data-view") == "notebook"
        assert await vera.locator(f'[data-cell-id="{cells[2]}"] .cm-editor').is_visible()
        assert "55" in await output_text(vera, cells[4], "55")
    await runner.close()


async def test_hiding_code_is_shared_and_saved_like_marimos_hide_code(lab):
    async with chromium() as browser:
        rita = await open_notebook(browser, lab, "rita")
        eddie = await open_notebook(browser, lab, "eddie")
        vera = await open_notebook(browser, lab, "vera")
        await vera.locator('[data-jp-item-name="view"] button').click()  # the code, please
        slider = (await cell_ids(rita))[2]
        hidden = f'[data-cell-id="{slider}"][data-code-hidden="true"]'
        shown = f'[data-cell-id="{slider}"][data-code-hidden="false"]'
        await rita.locator(f'[data-cell-id="{slider}"] [data-action="toggle-code"]').click()
        for page in (rita, eddie, vera):
            await page.wait_for_selector(hidden, timeout=10_000)
        await until(lambda: _file_has(lab, "@app.cell(hide_code=True)"))
        # A viewer may look at the code, for herself alone.
        await vera.locator(f'[data-cell-id="{slider}"] [data-action="toggle-code"]').click()
        await vera.wait_for_selector(shown, timeout=10_000)
        await asyncio.sleep(0.5)
        assert await rita.locator(hidden).count() == 1
        # An editor shows it again for everyone.
        await eddie.locator(f'[data-cell-id="{slider}"] [data-action="toggle-code"]').click()
        for page in (rita, eddie):
            await page.wait_for_selector(shown, timeout=10_000)
        await until(lambda: _file_lacks(lab, "hide_code=True"))


async def _file_has(lab, text: str) -> bool:
    return text in (lab.root / "demo.py").read_text()


async def _file_lacks(lab, text: str) -> bool:
    return text not in (lab.root / "demo.py").read_text()


async def test_viewer_gets_read_only_editors(lab):
    async with chromium() as browser:
        vera = await open_notebook(browser, lab, "vera")
        await vera.locator('[data-jp-item-name="view"] button').click()  # the code, please
        cell = (await cell_ids(vera))[0]
        assert await vera.get_attribute(f'[data-cell-id="{cell}"] .cm-content',
                                        "contenteditable") == "false"
        before = await cell_text(vera, cell)
        await type_at_end(vera, cell, "should not appear")
        await asyncio.sleep(0.5)
        assert await cell_text(vera, cell) == before
        assert await server_text(lab, cell) == before
        await screenshot(vera, "viewer")


async def test_page_recovers_after_the_server_dies_without_losing_typing(lab):
    async with chromium() as browser:
        rita = await open_notebook(browser, lab, "rita")
        cell = (await cell_ids(rita))[1]
        await type_at_end(rita, cell, "\n# before")
        await until(lambda: _contains(lab, cell, "# before"))
        lab.kill()
        await rita.wait_for_selector('[data-connection-status]:not([data-connection-status='
                                     '"connected"])', timeout=30_000)
        # JupyterLab's own dialogs ("Server Connection Error", or "Cannot open" when its
        # tree-URL fetch was still pending) take focus: close them as a user would
        await dismiss_dialogs(rita)
        await type_at_end(rita, cell, "\n# typed while offline")
        assert await rita.get_attribute("[data-connection-status]", "data-unsent-edits") == str(
            len("\n# typed while offline"))
        await screenshot(rita, "offline")
        lab.start()
        await rita.wait_for_selector('[data-connection-status="connected"]', timeout=60_000)
        await until(lambda: _contains(lab, cell, "# typed while offline"), timeout=60)
        text = await server_text(lab, cell)
        assert text.count("# before") == 1 and text.count("# typed while offline") == 1
        assert await cell_text(rita, cell) == text


async def dismiss_dialogs(page, quiet: float = 3.0, timeout: float = 40.0) -> None:
    """Close JupyterLab's dialogs (ticking "do not show again") until none shows for `quiet` s.

    A "Cannot open" dialog can come first and the "Server Connection Error" one only
    later on a busy machine: until that one is silenced (or `timeout`), keep watching.
    """
    loop = asyncio.get_running_loop()
    deadline, calm_since = loop.time() + timeout, loop.time()
    seen = silenced = False
    while loop.time() < deadline and (not silenced or loop.time() - calm_since < quiet):
        dialog = page.locator(".jp-Dialog").first
        if await dialog.count():
            seen = True
            again = dialog.get_by_text("Do not show this message again")
            if await again.count():
                await again.click()
                silenced = True
            await dialog.locator(".jp-Dialog-footer button").last.click()
            calm_since = loop.time()
        await asyncio.sleep(0.2)
    assert seen, "JupyterLab showed no connection dialog"


async def _contains(lab, cell: str, needle: str) -> bool:
    try:
        return needle in await server_text(lab, cell)
    except OSError:
        return False
