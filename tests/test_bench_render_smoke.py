"""Smoke test of benchmarks/bench_render.py's parts: its notebook, its "every output painted"
predicate and poll loop in a real Chromium, its memory reading, and its report.

No timing assertions and no servers (the benchmark itself takes minutes); docs/benchmarks.md
has its figures.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from benchmarks.bench_render import (
    KINDS,
    OUR_BOX,
    PAINTED,
    TABLE_ROWS,
    browser_memory,
    notebook,
    table,
    wait_painted,
)
from marimo_collab_ext.persistence.notebook_file import parse_notebook

from .browser_harness import chromium

CELLS = [["p", "plot"], ["c", "chart"], ["t", "table"], ["s", "slider"], ["x", "text"]]
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
       "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
# Every box but the text one, each not painted yet: an image without a source, a chart element
# not yet defined, a table body without rows, a slider element without its thumb.
UNPAINTED = """<div data-mc-output="p"><img></div>
<div data-mc-output="c"><mc-chart></mc-chart></div>
<div data-mc-output="t"><mc-table></mc-table></div>
<div data-mc-output="s"><mc-slider>Slider</mc-slider></div>"""
# What marimo's elements do once upgraded: render in open shadow roots.
PAINT = f"""() => {{
  document.querySelector('[data-mc-output="p"] img').src = {PNG!r};
  const shadow = (name, html) => customElements.define(name, class extends HTMLElement {{
    connectedCallback() {{ this.attachShadow({{mode: 'open'}}).innerHTML = html; }}
  }});
  shadow('mc-chart', '<canvas width="80" height="40" style="width: 80px"></canvas>');
  shadow('mc-table', '<table><tbody><tr><td>0</td><td>alpha</td></tr></tbody></table>');
  shadow('mc-slider', '<span role="slider" aria-valuenow="3">3</span>');
  const text = document.createElement('div');
  text.dataset.mcOutput = 'x';
  text.textContent = 'Note 1';
  document.body.appendChild(text);
}}"""


def test_the_notebook_has_sixty_cells_of_the_stated_kinds():
    text, kinds = notebook()
    cells = parse_notebook(text).cells  # marimo's own parser
    assert len(cells) == len(kinds) == 60
    assert Counter(kinds) == {**KINDS, "text": KINDS["text"] + 1, "none": 2}
    assert [c.code for c in cells].count("import marimo as mo") == 1
    signs = {"plot": "plt.subplots", "chart": "alt.Chart", "table": "mo.ui.table",
             "slider": "mo.ui.slider", "text": ('mo.md("', '"Note ')}
    for cell, kind in zip(cells, kinds, strict=True):
        compile(cell.code, "<cell>", "exec")
        if kind != "none":
            assert any(sign in cell.code for sign in (signs[kind] if kind == "text"
                                                      else (signs[kind],))), (kind, cell.code)
    assert all(f"_n = {TABLE_ROWS}" in c.code for c, k in zip(cells, kinds, strict=True)
               if k == "table")
    assert text == notebook()[0]  # deterministic


@pytest.mark.browser
async def test_painted_waits_for_every_kind_of_output_then_counts_it():
    async with chromium() as browser:
        page = await browser.new_page()
        await page.set_content(UNPAINTED)
        before = await page.evaluate(PAINTED, {"cells": CELLS, "box": OUR_BOX})
        assert not before["done"] and before["boxes"] == 4 and before["left"] == 5
        assert set(before["kinds"]) == {"plot", "chart", "table", "slider", "text"}
        assert before["pending"][:2] == ["p (plot): image loading",
                                         "c (chart): undefined mc-chart"]

        async def main_frame():
            return page.main_frame

        t0 = time.monotonic()
        await page.evaluate(f"() => setTimeout({PAINT}, 300)")
        after = await wait_painted(main_frame, CELLS, OUR_BOX, t0)
        assert after["painted_s"] >= 0.25
        assert after["first_box_s"] <= after["all_boxes_s"] <= after["painted_s"]
        assert after["counts"] == {"img": 1, "chart": 1, "table": 1, "rows": 1, "slider": 1,
                                   "custom": 3}
        assert set(after["kinds_painted_s"]) == {"plot", "chart", "table", "slider", "text"}
        memory = browser_memory()  # this test's browser: its processes, found from ours
        assert memory["processes"] >= 2 and memory["pss_dirty_mb"] > 10
        assert memory["pss_mb"] >= memory["pss_dirty_mb"]


def test_report_gives_medians_and_ratios():
    def ours(painted: float, mb: float) -> dict:
        return {"painted_s": painted, "app_s": 1.0, "first_box_s": 1.5, "all_boxes_s": 1.6,
                "kinds_painted_s": {"plot": painted}, "requests": 400, "frame_requests": 300,
                "frame_loads": 1,
                "own_cpu_s": 5.0, "other_cpu_util": 0.5, "counts": {"img": 10},
                "memory": {"pss_mb": mb + 100, "pss_dirty_mb": mb}}

    out = {"ours": [ours(2.0, 300), ours(4.0, 320)],
           "lab_alone": [{"pss_mb": 300, "pss_dirty_mb": 200}] * 2,
           "blank": [{"pss_mb": 200, "pss_dirty_mb": 100}] * 2,
           "marimo": [{"first_tab": {**ours(10.0, 0), "run_all_ready_s": 4.0,
                                     "run_to_painted_s": 6.0},
                       "late_joiner": ours(6.0, 200)}] * 2}
    text = table(out)
    assert "| **every output painted** | 3.00 (2.00–4.00) | 6.00 (6.00–6.00) |" in text
    assert "| every output painted, vs marimo's late joiner | 0.50 |" in text
    # the notebook adds 110 MB (310 - 200) to ours; marimo's page is 100 MB (200 - 100)
    assert "**1.10** (goal ≤ 1.5: met)" in text
