"""An agent's suggestion accepted by a person, and a cell restored from its history panel,
in a real browser (JupyterLab + headless Chromium)."""

from __future__ import annotations

from pathlib import Path

import pytest

from marimo_collab_ext.client import CollabClient

from .browser_harness import cell_ids, cell_text, chromium, open_notebook, screenshot, start_lab
from .test_browser_notebook import server_text, until
from .test_mcp_agent import agent, call

pytestmark = [pytest.mark.browser, pytest.mark.people]


@pytest.fixture
def lab(tmp_path: Path):
    server = start_lab(tmp_path)
    yield server
    server.stop()


async def test_agent_suggestion_accepted_then_cell_restored_from_history(lab):
    async with chromium() as browser:
        rita = await open_notebook(browser, lab, "rita")
        cell = (await cell_ids(rita))[0]
        original = await cell_text(rita, cell)
        first_line = original.split("\n")[0]
        async with agent(lab, "eddie-token", "demo.py", "--suggest", "--role", "editor",
                         "--type-delay", "0") as session:
            answer = await call(session, "edit_cell", cell=1, find=first_line,
                                text=first_line + "  # the agent's idea")
            assert "suggested" in answer
            # The agent is in the room: its avatar ("AI") and its cursor in the cell.
            avatar = rita.locator('[data-peer-username="eddie"]')
            await avatar.wait_for(timeout=15_000)
            assert (await avatar.text_content()).strip() == "AI"
            await rita.wait_for_selector(f'[data-cell-id="{cell}"] [data-remote-peer]',
                                         timeout=15_000)
            # The suggestion shows under the cell; nothing changed yet.
            box = rita.locator(f'[data-cell-id="{cell}"] [data-suggestion-id]')
            await box.wait_for(timeout=15_000)
            # the whole line, before and after
            assert f"-{first_line}+{first_line}  # the agent's idea" in (
                await box.text_content())
            assert await server_text(lab, cell) == original
            await screenshot(rita, "suggestion-shown")
            # A viewer sees it too, without the buttons to accept or reject it.
            vera = await open_notebook(browser, lab, "vera")
            seen = vera.locator(f'[data-cell-id="{cell}"] [data-suggestion-id]')
            await seen.wait_for(state="attached", timeout=15_000)
            assert await seen.locator("button").count() == 0
            # Someone types above it: once rita's page has that edit, the suggestion has
            # moved along and still shows its whole line.
            other = await CollabClient.connect(lab.url, "demo.py", token="eddie-token")
            other.edit(cell, {"from": 0, "insert": "# eddie\n"})
            await other.flush()
            await other.close()
            await until(lambda: _page_text_is(rita, cell, "# eddie\n" + original))
            assert f"-{first_line}+{first_line}  # the agent's idea" in (
                await box.text_content())
            await box.locator('[data-action="accept-suggestion"]').click()
            accepted = ("# eddie\n" + first_line + "  # the agent's idea"
                        + original[len(first_line):])

            async def applied() -> bool:
                return (await cell_text(rita, cell) == accepted
                        and await server_text(lab, cell) == accepted)
            await until(applied)
            await box.wait_for(state="detached", timeout=15_000)
            await seen.wait_for(state="detached", timeout=15_000)

        # The history panel lists the accepted edit, by rita, suggested by eddie.
        cell_box = rita.locator(f'[data-cell-id="{cell}"]')
        await cell_box.hover()
        await cell_box.locator('[data-action="history"]').click()
        newest = cell_box.locator('.jp-MarimoCollab-historyEntry').first
        await newest.wait_for(timeout=15_000)
        assert "suggested by eddie" in await newest.text_content()
        assert "rita" in await newest.text_content()
        await screenshot(rita, "history-panel")
        # Restore the first version: an edit everyone sees, recorded as rita's.
        await cell_box.locator('.jp-MarimoCollab-historyEntry').last.locator(
            '[data-action="restore-version"]').click()

        async def restored() -> bool:
            return (await cell_text(rita, cell) == original
                    and await server_text(lab, cell) == original)

        await until(restored)
        await until(lambda: _entries_at_least(cell_box, 3))
        head = await cell_box.locator('.jp-MarimoCollab-historyEntry').first.text_content()
        assert "rita" in head and "current" in head
        # Blame: the restored first line was last written by rita's restore.
        await cell_box.locator('[data-action="blame"]').click()
        await cell_box.locator('.jp-MarimoCollab-blameLine').first.wait_for(timeout=15_000)
        assert "rita" in await cell_box.locator(
            '.jp-MarimoCollab-blameLine').first.text_content()

        # The whole notebook back to right after the accepted suggestion (the entry below
        # the restore): the cell holds the accepted text again, for everyone.
        others = await cell_ids(rita)
        entry = cell_box.locator('.jp-MarimoCollab-historyEntry').nth(1)
        assert "suggested by eddie" in await entry.text_content()
        await entry.locator('[data-action="restore-notebook"]').click()

        async def notebook_restored() -> bool:
            return (await server_text(lab, cell) == accepted
                    and await cell_text(rita, cell) == accepted)
        await until(notebook_restored)
        assert await cell_ids(rita) == others


async def _page_text_is(page, cell: str, text: str) -> bool:
    return await cell_text(page, cell) == text


async def _entries_at_least(cell_box, n: int) -> bool:
    return await cell_box.locator('.jp-MarimoCollab-historyEntry').count() >= n
