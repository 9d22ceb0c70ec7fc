"""marimo's own tutorials and snippets (in the marimo wheel), rendered in the product as marimo
renders them.

Every output is checked in the page's output frame: shown in kind (no JSON, data URLs, HTML or
LaTeX source as text) and every marimo element in it upgraded by marimo's own code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import marimo
import pytest

from .browser_harness import cell_ids, chromium, output_frame, screenshot, start_lab
from .test_browser_widgets import open_path, run_all

pytestmark = pytest.mark.browser

TUTORIALS = Path(marimo.__file__).parent / "_tutorials"
SNIPPETS = Path(marimo.__file__).parent / "_snippets" / "data"
# The plotting and dataframe snippets; the others need cloud services, duckdb or keys.
SNIPPET_GROUPS = ("altair", "matplotlib", "polars")
# sql needs duckdb, external_dependencies and fileformat only talk about files.
SHOWN = ["intro", "dataflow", "ui", "markdown", "plots", "layout", "for_jupyter_users"]
# Errors the tutorials show on purpose (redefined variables, a cycle), as marimo shows them.
TEACHING_ERRORS = {"dataflow": 7, "for_jupyter_users": 3}
# polars-1 casts an integer month to Categorical, which polars 1.x refuses: the kernel (marimo's
# own) answers with that error, as marimo does.
SNIPPET_ERRORS = {"snippet_polars_1.py": 1}

# For each cell's box: what it shows, as text, and which marimo elements are not upgraded.
INSPECT = """() => Array.from(document.querySelectorAll('[data-mc-output]')).map(box => {
    const texts = [], undefinedTags = new Set();
    let elements = 0;
    const walk = node => {
        if (node.nodeType === Node.TEXT_NODE) { texts.push(node.textContent); return; }
        if (node.nodeName === 'STYLE' || node.nodeName === 'SCRIPT') return;
        if (node.nodeType === Node.ELEMENT_NODE && node.localName.startsWith('marimo-')) {
            elements += 1;
            if (!node.matches(':defined')) undefinedTags.add(node.localName);
        }
        // A shadow host shows its shadow tree; its own children only through a <slot>.
        if (node.shadowRoot) walk(node.shadowRoot);
        const slotted = !node.shadowRoot || node.shadowRoot.querySelector('slot');
        if (slotted) node.childNodes.forEach(walk);
    };
    walk(box);
    const renderer = box.querySelector('marimo-mime-renderer');
    return {id: box.dataset.mcOutput, empty: box.classList.contains('mc-empty'),
            mime: renderer ? JSON.parse(renderer.getAttribute('data-mime')) : null,
            text: texts.join(' '), elements, undefinedTags: [...undefinedTags]};
})"""

RAW = ['"mimetype"', "data:image/", "application/vnd.", "text/plain:", "</div>", "<marimo-",
       "||(", "||["]


@pytest.fixture
def lab(tmp_path: Path):
    server = start_lab(tmp_path)
    for name in SHOWN:
        shutil.copy(TUTORIALS / f"{name}.py", server.root / f"tutorial_{name}.py")
    for group in SNIPPET_GROUPS:
        for snippet in SNIPPETS.glob(f"{group}-*.py"):
            shutil.copy(snippet, server.root / f"snippet_{snippet.stem.replace('-', '_')}.py")
    yield server
    server.stop()


async def wait_until_idle(page, timeout: float = 120) -> None:
    await page.wait_for_selector('[data-kernel-status="idle"]', timeout=timeout * 1000)
    await page.wait_for_function(
        "() => !document.querySelector('[data-run-status=\"running\"], "
        "[data-run-status=\"queued\"]')", timeout=timeout * 1000)


async def inspect_outputs(page, min_shown: int, allowed_errors: int = 0) -> list[dict]:
    """Run the notebook, then check every output it shows; returns the boxes."""
    cells = await cell_ids(page)
    await run_all(page)
    await wait_until_idle(page)
    frame = await output_frame(page)
    await frame.wait_for_function(f"() => document.querySelectorAll("
                                  f"'[data-mc-output]').length >= {len(cells)}")
    await page.wait_for_timeout(2000)  # charts and tables finish drawing
    boxes = await frame.evaluate(INSPECT)
    shown = [box for box in boxes if not box["empty"]]
    assert len(shown) >= min_shown, f"{len(shown)} outputs for {len(cells)} cells"
    errors = [box["text"][:200] for box in shown if box["mime"] == "application/vnd.marimo+error"]
    assert len(errors) <= allowed_errors, errors
    for box in shown:
        assert not box["undefinedTags"], (box["id"], box["undefinedTags"])
        raw = [marker for marker in RAW if marker in box["text"]]
        assert not raw, (box["id"], raw, box["text"][:300])
    return shown


@pytest.mark.parametrize("name", SHOWN)
async def test_tutorial_renders_every_output_in_kind(lab, name):
    async with chromium() as browser:
        page = await open_path(browser, lab, "rita", f"tutorial_{name}.py")
        shown = await inspect_outputs(page, len(await cell_ids(page)) // 2,
                                      TEACHING_ERRORS.get(name, 0))
        assert sum(box["elements"] for box in shown) > 0
        await screenshot(page, f"tutorial-{name}")


@pytest.mark.parametrize("group", SNIPPET_GROUPS)
async def test_snippets_render_every_output_in_kind(lab, group):
    """Each snippet of the group, opened and run in turn, as a person trying them would."""
    snippets = sorted(lab.root.glob(f"snippet_{group}_*.py"))
    assert snippets
    async with chromium() as browser:
        for snippet in snippets:
            page = await open_path(browser, lab, "rita", snippet.name)
            await inspect_outputs(page, 1, SNIPPET_ERRORS.get(snippet.name, 0))
            await page.context.close()
