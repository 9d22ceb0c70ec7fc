"""Merging a file changed on disk into the live session without losing peers' edits.

Plans are applied here to a plain list of cells, the way the room applies them.
"""

from __future__ import annotations

import itertools
import random

from marimo_collab_ext.ot import ChangeSet
from marimo_collab_ext.ot.text import utf16_len
from marimo_collab_ext.persistence.disk_merge import (
    LiveCell,
    MergePlan,
    align_cells,
    merge_text,
    plan_external_merge,
)
from marimo_collab_ext.persistence.notebook_file import CellData
from marimo_collab_ext.persistence.text_diff import diff_changes, diff_specs


def _ids():
    counter = itertools.count(1)
    return lambda: f"new{next(counter)}"


def _apply(live: list[LiveCell], plan: MergePlan) -> list[LiveCell]:
    cells = {c.cell_id: c for c in live}
    order = [c.cell_id for c in live]
    for cid, change in plan.changes.items():
        old = cells[cid]
        assert change.length == utf16_len(old.code)
        cells[cid] = LiveCell(cid, change.apply(old.code), old.name, old.config)
    for op in plan.ops:
        kind, cid = op["op"], op["cell_id"]
        if kind == "delete":
            order.remove(cid)
        elif kind == "create":
            cells[cid] = LiveCell(cid, op["code"], op["name"], op["config"])
            order.insert(0 if op["after"] is None else order.index(op["after"]) + 1, cid)
        elif kind == "move":
            order.remove(cid)
            order.insert(0 if op["after"] is None else order.index(op["after"]) + 1, cid)
        elif kind == "rename":
            old = cells[cid]
            cells[cid] = LiveCell(cid, old.code, op["name"], old.config)
        elif kind == "config":
            old = cells[cid]
            cells[cid] = LiveCell(cid, old.code, old.name, op["config"])
    return [cells[cid] for cid in order]


def _session(*codes: str) -> tuple[list[CellData], list[str], list[LiveCell]]:
    base = [CellData(code) for code in codes]
    ids = [f"c{k}" for k in range(len(codes))]
    live = [LiveCell(cid, code) for cid, code in zip(ids, codes, strict=True)]
    return base, ids, live


def _merge(base, ids, disk, live):
    plan = plan_external_merge(base, ids, disk, live, new_id=_ids())
    return plan, _apply(live, plan)


def test_unchanged_file_plans_nothing():
    base, ids, live = _session("import marimo as mo", "x = 1")
    plan, _ = _merge(base, ids, list(base), live)
    assert plan.empty and not plan.conflicts
    assert plan.disk_ids == ids


def test_file_rewrites_a_cell_nobody_edits():
    base, ids, live = _session("import marimo as mo", "x = 1\ny = 2", "print(x)")
    disk = [CellData("import marimo as mo"), CellData("x = 10\ny = 2"), CellData("print(x)")]
    plan, result = _merge(base, ids, disk, live)
    assert list(plan.changes) == ["c1"]
    assert [c.code for c in result] == ["import marimo as mo", "x = 10\ny = 2", "print(x)"]
    assert plan.ops == [] and plan.conflicts == []


def test_file_edit_of_one_cell_and_peer_edit_of_another_both_survive():
    base, ids, live = _session("a = 1", "b = 2")
    live[1] = LiveCell("c1", "b = 2  # typed by a peer")
    disk = [CellData("a = 100"), CellData("b = 2")]
    plan, result = _merge(base, ids, disk, live)
    assert [c.code for c in result] == ["a = 100", "b = 2  # typed by a peer"]
    assert "c1" not in plan.changes


def test_same_cell_edited_in_different_places_keeps_both():
    text = "import os\n\ndef f():\n    return 1\n\nvalue = f()\nprint(value)"
    base, ids, live = _session(text)
    live[0] = LiveCell("c0", text.replace("print(value)", "print(value, 'peer')"))
    disk = [CellData(text.replace("import os", "import os, sys"))]
    plan, result = _merge(base, ids, disk, live)
    assert result[0].code == (
        "import os, sys\n\ndef f():\n    return 1\n\nvalue = f()\nprint(value, 'peer')"
    )
    assert plan.conflicts == []


def test_same_place_edits_keep_both_texts_and_report_a_conflict():
    base, ids, live = _session("x = 1")
    live[0] = LiveCell("c0", "x = 3")
    plan, result = _merge(base, ids, [CellData("x = 2")], live)
    assert "2" in result[0].code and "3" in result[0].code
    assert plan.conflicts


def test_file_adds_cells_in_place():
    base, ids, live = _session("a = 1", "b = 2")
    disk = [CellData("top = 0"), CellData("a = 1"), CellData("mid = 1"), CellData("b = 2")]
    plan, result = _merge(base, ids, disk, live)
    assert [c.code for c in result] == ["top = 0", "a = 1", "mid = 1", "b = 2"]
    assert [op["op"] for op in plan.ops] == ["create", "create"]
    assert plan.ops[0]["after"] is None and plan.ops[1]["after"] == "c0"
    assert plan.disk_ids == ["new1", "c0", "new2", "c1"]


def test_new_file_cells_land_after_their_file_neighbour_among_live_only_cells():
    base, ids, live = _session("a = 1", "b = 2")
    live.insert(1, LiveCell("peer", "p = 'new in session'"))
    disk = [CellData("a = 1"), CellData("n = 'new on disk'"), CellData("b = 2")]
    _, result = _merge(base, ids, disk, live)
    assert [c.code for c in result] == [
        "a = 1",
        "n = 'new on disk'",
        "p = 'new in session'",
        "b = 2",
    ]


def test_file_deletes_an_untouched_cell():
    base, ids, live = _session("a = 1", "b = 2", "c = 3")
    plan, result = _merge(base, ids, [CellData("a = 1"), CellData("c = 3")], live)
    assert plan.ops == [{"op": "delete", "cell_id": "c1"}]
    assert [c.code for c in result] == ["a = 1", "c = 3"]


def test_file_deleting_a_cell_a_peer_edited_keeps_it_with_a_note():
    base, ids, live = _session("a = 1", "b = 2")
    live[1] = LiveCell("c1", "b = 2 + 1")
    plan, result = _merge(base, ids, [CellData("a = 1")], live)
    assert [c.code for c in result] == ["a = 1", "b = 2 + 1"]
    assert any("c1" in note for note in plan.conflicts)


def test_file_reorders_cells():
    base, ids, live = _session("a = 1", "b = 2", "c = 3", "d = 4")
    disk = [CellData("c = 3"), CellData("a = 1"), CellData("b = 2"), CellData("d = 4")]
    plan, result = _merge(base, ids, disk, live)
    assert [c.code for c in result] == ["c = 3", "a = 1", "b = 2", "d = 4"]
    assert plan.ops == [{"op": "move", "cell_id": "c2", "after": None}]


def test_reorder_and_edit_of_a_moved_cell():
    base, ids, live = _session("alpha = 1\nbeta = 2", "gamma = 3", "delta = 4")
    live[0] = LiveCell("c0", "alpha = 1\nbeta = 2\n# peer")
    disk = [CellData("gamma = 3"), CellData("delta = 4"), CellData("alpha = 1\nbeta = 20")]
    _, result = _merge(base, ids, disk, live)
    assert [c.cell_id for c in result] == ["c1", "c2", "c0"]
    assert result[2].code == "alpha = 1\nbeta = 20\n# peer"


def test_session_moves_survive_a_file_edit():
    base, ids, live = _session("a = 1", "b = 2", "c = 3")
    live = [live[2], live[0], live[1]]  # a peer moved c to the top
    disk = [CellData("a = 1"), CellData("b = 22"), CellData("c = 3")]
    plan, result = _merge(base, ids, disk, live)
    assert [c.code for c in result] == ["c = 3", "a = 1", "b = 22"]
    assert plan.ops == []


def test_rename_and_config_from_the_file():
    base = [CellData("x = 1", name="first", config={"hide_code": True}), CellData("y = 2")]
    ids = ["c0", "c1"]
    live = [LiveCell("c0", "x = 1", "first", {"hide_code": True}), LiveCell("c1", "y = 2")]
    disk = [CellData("x = 1", name="renamed", config={}), CellData("y = 2", config={"column": 1})]
    plan, result = _merge(base, ids, disk, live)
    assert result[0].name == "renamed" and result[0].config == {}
    assert result[1].config == {"column": 1}
    assert not plan.conflicts


def test_renamed_in_both_places_keeps_the_session_name():
    base = [CellData("x = 1", name="a")]
    live = [LiveCell("c0", "x = 1", "b")]
    plan, result = _merge(base, ["c0"], [CellData("x = 1", name="c")], live)
    assert result[0].name == "b" and plan.conflicts


def test_cell_deleted_in_session_and_changed_on_disk_is_restored():
    base, ids, live = _session("a = 1", "b = 2")
    live = live[:1]
    plan, result = _merge(base, ids, [CellData("a = 1"), CellData("b = 3")], live)
    assert [c.code for c in result] == ["a = 1", "b = 3"]
    assert plan.conflicts


def test_cell_deleted_in_session_and_unchanged_on_disk_stays_deleted():
    base, ids, live = _session("a = 1", "b = 2")
    live = live[:1]
    plan, result = _merge(base, ids, [CellData("a = 10"), CellData("b = 2")], live)
    assert [c.code for c in result] == ["a = 10"]
    assert plan.disk_ids == ["c0", None]


def test_emoji_positions_are_utf16():
    base, ids, live = _session("s = '😀👩‍💻'\nt = 1")
    live[0] = LiveCell("c0", "s = '😀👩‍💻!'\nt = 1")
    disk = [CellData("s = '😀👩‍💻'\nt = 2")]
    plan, result = _merge(base, ids, disk, live)
    assert result[0].code == "s = '😀👩‍💻!'\nt = 2"
    assert plan.changes["c0"].length == utf16_len(live[0].code)
    assert diff_specs("😀a", "😀b") == [{"from": 2, "to": 3, "insert": "b"}]


def test_trailing_whitespace_normalisation_is_not_a_change():
    base, ids, live = _session("x = 1\n\n")
    plan, _ = _merge(base, ids, [CellData("x = 1")], live)
    assert plan.empty


def test_similar_cells_are_aligned_even_with_unrelated_inserts():
    base = [CellData("import numpy as np"), CellData("data = np.arange(10)\ntotal = data.sum()")]
    disk = [
        CellData("import numpy as np"),
        CellData("# brand new"),
        CellData("data = np.arange(100)\ntotal = data.sum()"),
    ]
    assert align_cells(base, disk) == {0: 0, 2: 1}


def test_diff_and_merge_agree_on_random_texts():
    rng = random.Random(7)
    alphabet = ["a", "b", "\n", "😀", "👩‍💻", "x = 1\n", " ", "é"]
    for _ in range(500):
        texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 15))) for _ in "bdl"]
        base, disk, live = texts
        assert diff_changes(base, disk).apply(base) == disk
        change, _ = merge_text(base, disk, live)
        merged = live if change is None else change.apply(live)
        assert isinstance(change, (ChangeSet, type(None)))
        if disk == base:
            assert merged == live
        if live == base:
            assert merged == disk


def _random_cells(rng: random.Random, pool: list[str], n: int) -> list[str]:
    return [rng.choice(pool) + f"\nv{rng.randint(0, 3)}" for _ in range(n)]


def test_random_file_changes_apply_exactly_to_an_idle_session():
    rng = random.Random(11)
    pool = ["a = 1", "b = 2", "import os", "print('😀')", "", "def f():\n    return 1"]
    for _ in range(300):
        base_codes = _random_cells(rng, pool, rng.randint(0, 6))
        disk_codes = list(base_codes)
        for _ in range(rng.randint(0, 4)):
            action = rng.choice(["edit", "add", "delete", "move"])
            if action == "add" or not disk_codes:
                disk_codes.insert(rng.randint(0, len(disk_codes)), rng.choice(pool) + "\nnew")
            elif action == "edit":
                k = rng.randrange(len(disk_codes))
                disk_codes[k] = disk_codes[k] + "\n# edited 👩‍💻"
            elif action == "delete":
                disk_codes.pop(rng.randrange(len(disk_codes)))
            else:
                disk_codes.insert(rng.randint(0, len(disk_codes) - 1), disk_codes.pop())
        base, ids, live = _session(*base_codes)
        disk = [CellData(code) for code in disk_codes]
        plan, result = _merge(base, ids, disk, live)
        assert [c.code for c in result] == disk_codes
        assert [c.cell_id for c in result] == plan.disk_ids
        assert not plan.conflicts


def test_random_merges_keep_every_session_only_cell_and_apply_cleanly():
    rng = random.Random(12)
    pool = ["a = 1", "b = 2", "x = 'é'", "y = '😀'"]
    for _ in range(300):
        base_codes = _random_cells(rng, pool, rng.randint(1, 5))
        base, ids, live = _session(*base_codes)
        live = [LiveCell(c.cell_id, c.code + "\n# peer") if rng.random() < 0.4 else c for c in live]
        rng.shuffle(live)
        live.insert(rng.randint(0, len(live)), LiveCell("mine", "only = 'in session'"))
        disk_codes = list(base_codes)
        rng.shuffle(disk_codes)
        if disk_codes and rng.random() < 0.5:
            disk_codes.pop()
        disk_codes.append("z = 'from disk'")
        plan, result = _merge(base, ids, [CellData(c) for c in disk_codes], live)
        codes = [c.code for c in result]
        assert "only = 'in session'" in codes
        assert "z = 'from disk'" in codes
        for cell in live:
            if cell.code.endswith("# peer"):
                assert any(
                    code.endswith("# peer") and code.startswith(cell.code[:5]) for code in codes
                )


def test_cell_rewritten_in_place_keeps_its_id():
    base = [CellData("import marimo as mo"), CellData("x = 1"), CellData('print("old")')]
    disk = [CellData("import marimo as mo"), CellData("x = 1"), CellData("y = [n for n in z]")]
    live = [LiveCell(f"c{i}", c.code) for i, c in enumerate(base)]
    plan = plan_external_merge(base, ["c0", "c1", "c2"], disk, live)
    assert plan.ops == []
    assert plan.changes["c2"].apply('print("old")') == "y = [n for n in z]"
    assert plan.disk_ids == ["c0", "c1", "c2"]
