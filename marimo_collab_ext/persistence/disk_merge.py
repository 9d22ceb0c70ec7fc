"""Merging a change of the notebook file made outside the session (git, another editor).

Pure: from what the file held, what it holds now and the live cells, a plan of edits
that keeps every edit peers made since (protocol: "Saving").
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from ..ot import ChangeSet
from .notebook_file import CellData
from .text_diff import diff_changes, touched_ranges

__all__ = ["LiveCell", "MergePlan", "align_cells", "merge_text", "plan_external_merge"]

# Below this similarity two cells are not "the same cell, edited".
_SIMILAR = 0.6


@dataclass(frozen=True)
class LiveCell:
    """A cell of the session as it is now: its id, current text, name and config.

    Cells created since the last load/save are simply absent from the merge's base.
    """

    cell_id: str
    code: str
    name: str = "_"
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class MergePlan:
    """What the room applies, as the server's own edits, to merge the file into the session.

    Apply `changes` (each against that cell's current live text) first, then `ops` in order.
    """

    # Structure ops shaped as protocol "cells" ops; `create` ops carry their new cell_id.
    ops: list[dict[str, Any]] = field(default_factory=list)
    # Per live cell id: the file's change, mapped over the session's edits since the save.
    changes: dict[str, ChangeSet] = field(default_factory=dict)
    # Human-readable notes where both sides changed the same thing (both kept).
    conflicts: list[str] = field(default_factory=list)
    # For each cell of the new file, the session cell id now holding it (None: deleted
    # in the session and unchanged on disk). The room's new "saved" base.
    disk_ids: list[str | None] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when the file's change needs nothing from the session."""
        return not self.ops and not self.changes


def plan_external_merge(
    base: list[CellData],
    base_ids: list[str],
    disk: list[CellData],
    live: list[LiveCell],
    *,
    new_id: Callable[[], str] | None = None,
) -> MergePlan:
    """Plan the merge of the file's new cells `disk` into the `live` session.

    `base` is what the file held at the last load/save, `base_ids[i]` the session id of `base[i]`.
    """
    if len(base) != len(base_ids):
        raise ValueError("base and base_ids must be aligned index by index")
    make_id = new_id or _random_id
    live_by_id = {cell.cell_id: cell for cell in live}
    rewritable = {
        i for i, (cell, cid) in enumerate(zip(base, base_ids, strict=True))
        if cid in live_by_id and _unchanged(cell, live_by_id[cid])
    }
    pairs = align_cells(base, disk, rewritable)  # disk index -> base index
    matched_base = set(pairs.values())
    plan = MergePlan(disk_ids=[None] * len(disk))

    # Cells removed from the file: delete them unless a peer has edited them since.
    deleted: set[str] = set()
    for i, (cell, cid) in enumerate(zip(base, base_ids, strict=True)):
        if i in matched_base or cid not in live_by_id:
            continue
        if _unchanged(cell, live_by_id[cid]):
            plan.ops.append({"op": "delete", "cell_id": cid})
            deleted.add(cid)
        else:
            plan.conflicts.append(
                f"cell {cid} was removed from the file but edited in the session: kept"
            )

    # Cells in both: three-way merge of code, name and config.
    gone: set[int] = set()  # deleted in the session, unchanged in the file: stay deleted
    for j, i in pairs.items():
        cid = base_ids[i]
        if cid in live_by_id:
            plan.disk_ids[j] = cid
            _merge_cell(base[i], disk[j], live_by_id[cid], plan)
        elif _same(base[i], disk[j]):
            gone.add(j)
        else:
            plan.conflicts.append(
                f"cell {cid} was deleted in the session but changed in the file: restored"
            )

    _place_cells(base_ids, disk, live, pairs, deleted, gone, make_id, plan)
    return plan


def merge_text(base: str, disk: str, live: str) -> tuple[ChangeSet | None, bool]:
    """The file's change `base`→`disk`, mapped over the session's `base`→`live`.

    Returns the change set to apply to `live` (None if none) and whether the edits overlap.
    """
    if disk == base or disk == live:
        return None, False
    to_disk = diff_changes(base, disk)
    if live == base:
        return to_disk, False
    to_live = diff_changes(base, live)
    overlap = _overlaps(touched_ranges(to_disk), touched_ranges(to_live))
    # At a shared position the file's insertion goes first: it was made against the
    # old text, the session's typing came after it at that spot.
    return to_disk.map(to_live, before=True), overlap


def align_cells(
    base: list[CellData], disk: list[CellData], rewritable: set[int] = frozenset()
) -> dict[int, int]:
    """Which cell of the old file each cell of the new file is (disk index -> base index).

    Same code in order, then same code moved, same name, similar code nearby, a `rewritable`
    base cell rewritten in place (a replaced run of as many cells), then similar code anywhere.
    """
    pairs: dict[int, int] = {}
    matcher = SequenceMatcher(None, [c.code for c in base], [c.code for c in disk], autojunk=False)
    blocks = matcher.get_opcodes()
    for tag, i1, _i2, j1, j2 in blocks:
        if tag == "equal":
            pairs.update({j1 + k: i1 + k for k in range(j2 - j1)})
    _pair_exact(base, disk, pairs)
    _pair_by_name(base, disk, pairs)
    for tag, i1, i2, j1, j2 in blocks:
        if tag == "replace":
            _pair_similar(base, disk, range(i1, i2), range(j1, j2), pairs, in_order=True)
    _pair_in_place(blocks, pairs, rewritable)
    _pair_similar(base, disk, range(len(base)), range(len(disk)), pairs, in_order=False)
    return pairs


def _pair_in_place(blocks: list, pairs: dict[int, int], rewritable: set[int]) -> None:
    # A run of n cells replaced by n cells at the same place is those cells rewritten: keep
    # their ids, so peers see the new code in the cell they know rather than a new cell.
    # Only for cells nobody edited live: an edited one is kept beside the file's new cell.
    taken = set(pairs.values())
    for tag, i1, i2, j1, j2 in blocks:
        if tag == "replace" and i2 - i1 == j2 - j1:
            for k in range(j2 - j1):
                if j1 + k not in pairs and i1 + k not in taken and i1 + k in rewritable:
                    pairs[j1 + k] = i1 + k
                    taken.add(i1 + k)


def _merge_cell(base: CellData, disk: CellData, cell: LiveCell, plan: MergePlan) -> None:
    cid = cell.cell_id
    if not _same_code(base.code, disk.code):
        change, overlap = merge_text(base.code, disk.code, cell.code)
        if change is not None and not change.empty:
            plan.changes[cid] = change
        if overlap:
            plan.conflicts.append(
                f"cell {cid} was changed in the same place in the file and in the session:"
                " both changes kept"
            )
    if disk.name != base.name:
        if cell.name == base.name:
            plan.ops.append({"op": "rename", "cell_id": cid, "name": disk.name})
        elif cell.name != disk.name:
            plan.conflicts.append(
                f"cell {cid} was renamed to {disk.name!r} in the file and to"
                f" {cell.name!r} in the session: the session's name kept"
            )
    config = _merge_config(base.config, disk.config, cell.config)
    if config is None:
        plan.conflicts.append(f"cell {cid}: file and session changed the same setting")
        config = _merge_config(base.config, disk.config, cell.config, prefer_live=True)
    if config is not None and config != cell.config:
        # A config op carries the cell's whole config (absent keys are marimo's defaults).
        plan.ops.append({"op": "config", "cell_id": cid, "config": config})


def _merge_config(
    base: dict[str, Any], disk: dict[str, Any], live: dict[str, Any], prefer_live: bool = False
) -> dict[str, Any] | None:
    result = dict(live)
    for key in set(base) | set(disk) | set(live):
        b, d, v = base.get(key), disk.get(key), live.get(key)
        if d == b or d == v:
            continue
        if v != b and not prefer_live:
            return None
        if v == b:
            if d is None:
                result.pop(key, None)
            else:
                result[key] = d
    return result


def _place_cells(
    base_ids: list[str],
    disk: list[CellData],
    live: list[LiveCell],
    pairs: dict[int, int],
    deleted: set[str],
    gone: set[int],
    make_id: Callable[[], str],
    plan: MergePlan,
) -> None:
    """Create the file's new cells and move the cells the file moved, in file order."""
    order = [c.cell_id for c in live if c.cell_id not in deleted]
    alive = set(order)
    present = {j: base_ids[i] for j, i in pairs.items() if base_ids[i] in alive}
    # The file moved a cell when it left the longest run kept in the old file's order.
    in_disk = [present[j] for j in sorted(present)]
    rank = {cid: k for k, cid in enumerate(base_ids)}
    steady = _longest_increasing([rank[c] for c in in_disk])
    moved = {cid for k, cid in enumerate(in_disk) if k not in steady}
    prev: str | None = None
    for j, cell in enumerate(disk):
        if j in gone:
            continue
        cid = present.get(j)
        if cid is None:
            cid = make_id()
            plan.ops.append(
                {
                    "op": "create",
                    "cell_id": cid,
                    "after": prev,
                    "code": cell.code,
                    "name": cell.name,
                    "config": dict(cell.config),
                }
            )
            order.insert(_after_index(order, prev), cid)
            plan.disk_ids[j] = cid
        elif cid in moved and _after_index(order, prev) != order.index(cid):
            plan.ops.append({"op": "move", "cell_id": cid, "after": prev})
            order.remove(cid)
            order.insert(_after_index(order, prev), cid)
        prev = cid


def _after_index(order: list[str], prev: str | None) -> int:
    return 0 if prev is None else order.index(prev) + 1


def _longest_increasing(values: list[int]) -> set[int]:
    """Indices of one longest strictly increasing subsequence of `values`."""
    tails: list[int] = []
    tail_at: list[int] = []
    parent = [-1] * len(values)
    for k, v in enumerate(values):
        pos = bisect.bisect_left(tails, v)
        if pos == len(tails):
            tails.append(v)
            tail_at.append(k)
        else:
            tails[pos] = v
            tail_at[pos] = k
        parent[k] = tail_at[pos - 1] if pos else -1
    keep: set[int] = set()
    k = tail_at[-1] if tail_at else -1
    while k >= 0:
        keep.add(k)
        k = parent[k]
    return keep


def _pair_exact(base: list[CellData], disk: list[CellData], pairs: dict[int, int]) -> None:
    # Identical code elsewhere in the file: the cell was moved.
    free: dict[str, list[int]] = {}
    used = set(pairs.values())
    for i, cell in enumerate(base):
        if i not in used:
            free.setdefault(cell.code, []).append(i)
    for j, cell in enumerate(disk):
        if j not in pairs and free.get(cell.code):
            pairs[j] = free[cell.code].pop(0)


def _pair_by_name(base: list[CellData], disk: list[CellData], pairs: dict[int, int]) -> None:
    # A cell's own (non-default) name identifies it when unique on both sides.
    used = set(pairs.values())
    base_names = _unique_names(base, used)
    disk_names = _unique_names(disk, set(pairs))
    for name, j in disk_names.items():
        if name in base_names:
            pairs[j] = base_names[name]


def _unique_names(cells: list[CellData], taken: set[int]) -> dict[str, int]:
    seen: dict[str, int] = {}
    dupes: set[str] = set()
    for k, cell in enumerate(cells):
        if cell.name in ("_", "__", "") or k in taken:
            continue
        if cell.name in seen:
            dupes.add(cell.name)
        seen[cell.name] = k
    return {name: k for name, k in seen.items() if name not in dupes}


def _pair_similar(
    base: list[CellData],
    disk: list[CellData],
    base_range: range,
    disk_range: range,
    pairs: dict[int, int],
    *,
    in_order: bool,
) -> None:
    used = set(pairs.values())
    last_j = -1
    for i in base_range:
        if i in used:
            continue
        best, best_score = None, _SIMILAR
        for j in disk_range:
            if j in pairs or (in_order and j <= last_j):
                continue
            score = _similarity(base[i].code, disk[j].code)
            if score > best_score:
                best, best_score = j, score
        if best is not None:
            pairs[best] = i
            used.add(i)
            last_j = best


def _similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    if matcher.real_quick_ratio() <= _SIMILAR or matcher.quick_ratio() <= _SIMILAR:
        return 0.0
    return matcher.ratio()


def _overlaps(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> bool:
    return any(x1 <= y2 and y1 <= x2 for x1, x2 in a for y1, y2 in b)


def _same_code(a: str, b: str) -> bool:
    # The file holds marimo's normal form; trailing whitespace alone is not a change.
    return a == b or a.rstrip() == b.rstrip()


def _same(a: CellData, b: CellData) -> bool:
    return _same_code(a.code, b.code) and a.name == b.name and a.config == b.config


def _unchanged(saved: CellData, cell: LiveCell) -> bool:
    return (
        _same_code(saved.code, cell.code)
        and saved.name == cell.name
        and saved.config == cell.config
    )


def _random_id() -> str:
    return "disk-" + uuid.uuid4().hex[:12]
