"""Real JupyterLab and headless Chromium for end-to-end tests (Debian's chromium)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path
from urllib.parse import quote

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Frame, Locator, Page, async_playwright

from marimo_collab_ext.client import CollabClient

from .servers import ServerProcess

ROOT = Path(__file__).parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
FACTORY = "marimo (multiplayer)"


def start_lab(tmp: Path, collab: dict | None = None) -> ServerProcess:
    """JupyterLab with the extension, several people (tests/identities.py), the demo notebook."""
    root, journal = tmp / "root", tmp / "journal"
    root.mkdir()
    journal.mkdir()
    shutil.copy(ROOT / "examples" / "demo.py", root / "demo.py")
    return ServerProcess(
        root, journal, {"autosave_delay": 0.3, **(collab or {})}, app="jupyterlab",
        extra_args=["--ServerApp.identity_provider_class=tests.identities.TokenPerPerson",
                    "--ServerApp.authorizer_class=tests.identities.RightsPerPerson",
                    "--LabApp.news_url=", "--LabApp.check_for_updates_class="
                    "jupyterlab.NeverCheckForUpdate"]).start()


@contextlib.asynccontextmanager
async def chromium():
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                   args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def notebook_url(lab: ServerProcess, person: str, path: str = "demo.py") -> str:
    """The documented URL that opens a notebook with the multiplayer editor (own workspace)."""
    return (f"{lab.url}lab/workspaces/{person}/tree/{quote(path)}"
            f"?token={person}-token&factory={quote(FACTORY)}")


async def open_notebook(browser, lab: ServerProcess, person: str) -> Page:
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    await page.goto(notebook_url(lab, person))
    # attached: a viewer starts in the app view, where the code is hidden
    await page.wait_for_selector("[data-cell-id] .cm-editor", state="attached", timeout=60_000)
    await page.wait_for_selector('[data-connection-status="connected"]', timeout=60_000)
    return page


async def demo_run_by_rita(lab: ServerProcess) -> CollabClient:
    """rita (a runner), as a protocol client, after running the whole demo notebook."""
    runner = await CollabClient.connect(lab.url, "demo.py", token="rita-token")
    await runner.run(runner.order)
    await runner.next_event(lambda e: e["type"] == "kernel_status" and e["status"] == "idle",
                            timeout=60)
    return runner


async def cell_ids(page: Page) -> list[str]:
    return await page.eval_on_selector_all("[data-cell-id]",
                                           "els => els.map(e => e.dataset.cellId)")


async def cell_text(page: Page, cell_id: str) -> str:
    """The editor's document: its lines, without widgets (remote cursors' name labels)."""
    return await page.eval_on_selector(f'[data-cell-id="{cell_id}"] .cm-content', """el =>
        Array.from(el.querySelectorAll('.cm-line')).map(line => {
          const copy = line.cloneNode(true);
          copy.querySelectorAll('[contenteditable="false"], .cm-widgetBuffer')
            .forEach(w => w.remove());
          return copy.textContent;
        }).join('\\n')""")


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


# Text of a cell's output box in the output frame, through marimo's shadow roots (its
# elements render in them), without their copied style sheets.
OUTPUT_TEXT = """id => {
    const box = document.querySelector(`[data-mc-output="${CSS.escape(id)}"]`);
    if (!box) return null;
    const parts = [];
    const walk = node => {
        if (node.nodeType === Node.TEXT_NODE) { parts.push(node.textContent); return; }
        if (node.nodeName === 'STYLE' || node.nodeName === 'SCRIPT') return;
        // A shadow host shows its shadow tree; its own children only through a <slot>.
        if (node.shadowRoot) walk(node.shadowRoot);
        const slotted = !node.shadowRoot || node.shadowRoot.querySelector('slot');
        if (slotted) node.childNodes.forEach(walk);
    };
    walk(box);
    return parts.join(' ').replace(/\\s+/g, ' ');
}"""


async def output_frame(page: Page, timeout: float = 60) -> Frame:
    """The notebook's output frame, once marimo's app in it renders (its boxes exist)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        element = await page.query_selector("iframe.jp-MarimoCollab-outputFrame")
        frame = await element.content_frame() if element else None
        if frame is not None:
            try:
                if await frame.evaluate("() => !!document.getElementById('mc-outputs')"):
                    return frame
            except PlaywrightError:
                pass  # reloading
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("no output frame")
        await asyncio.sleep(0.2)


def output_box(frame: Frame, cell_id: str) -> Locator:
    """The element holding a cell's output in the output frame (docs/widgets.md)."""
    return frame.locator(f'[data-mc-output="{cell_id}"]')


async def output_text(page: Page, cell_id: str, needle: str, timeout: float = 60) -> str:
    """The cell's output (marimo's rendering in the frame) and console, once it has `needle`."""
    deadline = asyncio.get_running_loop().time() + timeout
    seen = None
    while True:
        try:
            left = deadline - asyncio.get_running_loop().time()
            frame = await output_frame(page, timeout=max(1.0, left))
            shown = await frame.evaluate(OUTPUT_TEXT, cell_id) or ""
            console = page.locator(f'[data-cell-id="{cell_id}"] .jp-MarimoCollab-console')
            text = f"{shown}\n{await console.inner_text() if await console.count() else ''}"
            if needle in text:
                return text
            seen = text[-300:]
        except PlaywrightError as error:
            seen = str(error)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no output with {needle!r} in cell {cell_id}; it shows {seen!r}")
        await asyncio.sleep(0.3)
