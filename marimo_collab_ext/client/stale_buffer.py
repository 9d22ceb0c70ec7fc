"""CellHistory: the versions of each cell the mirrored file held, to spot a stale editor buffer.

An editor that saves a buffer loaded before the mirror's last write would revert peers' edits.
"""

from __future__ import annotations

import dataclasses
from difflib import SequenceMatcher

from ..persistence.disk_merge import align_cells
from ..persistence.notebook_file import CellData

__all__ = ["CellHistory"]

# Versions kept per cell; longer cells are not compared (SequenceMatcher is quadratic).
_HISTORY_DEPTH = 20
_COMPARE_LIMIT = 20_000


class CellHistory:
    """The codes the local file has held, per cell id, to recognise a save of a stale buffer.

    An editor that saves a buffer loaded before the mirror's last write would revert peers' edits.
    """

    def __init__(self) -> None:
        self.seq = 0
        self.codes: dict[str, list[tuple[int, str]]] = {}
        self.born: dict[str, int] = {}
        # (cell id, old code) already treated as stale once: the next such save is deliberate.
        self.forgiven: set[tuple[str, str | None]] = set()

    def record(self, cells: list[CellData], ids: list[str]) -> None:
        """A new version of the file: what it holds, aligned with session ids."""
        self.seq += 1
        for cid, cell in zip(ids, cells, strict=True):
            entries = self.codes.setdefault(cid, [])
            if not entries or entries[-1][1] != cell.code:
                entries.append((self.seq, cell.code))
                del entries[:-_HISTORY_DEPTH]
            self.born.setdefault(cid, self.seq)

    def rebase(self, base: list[CellData], base_ids: list[str],
               local: list[CellData]) -> tuple[list[CellData], list[str], list[str]]:
        """The merge base the editor most likely started from (base, ids, notes for the user).

        A cell equal to an older version, or closest to one, was loaded before peers changed it.
        """
        pairs = align_cells(base, local)  # local index -> base index
        adjusted, notes = list(base), []
        loaded_before: int | None = None  # the editor's copy predates the version of this seq
        for j, i in pairs.items():
            cid, code = base_ids[i], local[j].code
            entries = self.codes.get(cid, [])
            if len(entries) < 2 or code.rstrip() == base[i].code.rstrip() \
                    or len(code) > _COMPARE_LIMIT:
                continue
            best = max(range(len(entries)), key=lambda k: (_similarity(entries[k][1], code), k))
            old = entries[best][1]
            if best == len(entries) - 1 or (cid, old) in self.forgiven:
                continue
            adjusted[i] = dataclasses.replace(base[i], code=old)
            self.forgiven.add((cid, old))
            if old.rstrip() == code.rstrip():
                notes.append(f"cell {cid}: the file held an older version of it (the editor had"
                             " not reloaded a peer's change?): kept the peer's change; save"
                             " again to undo it")
            else:
                notes.append(f"cell {cid}: merged your save with a peer's change your editor"
                             " had not loaded")
            following = entries[best + 1][0]
            loaded_before = following if loaded_before is None else min(loaded_before, following)
        keep = []
        matched = set(pairs.values())
        for i, cid in enumerate(base_ids):
            new = loaded_before is not None and self.born.get(cid, 0) >= loaded_before
            if i not in matched and new and (cid, None) not in self.forgiven:
                self.forgiven.add((cid, None))
                notes.append(f"cell {cid} was added by a peer after the editor loaded the file:"
                             " kept; delete it again to remove it")
                continue  # not in the base: to the merge, a cell the session created
            keep.append(i)
        return [adjusted[i] for i in keep], [base_ids[i] for i in keep], notes


def _similarity(a: str, b: str) -> float:
    return 1.0 if a == b else SequenceMatcher(None, a, b, autojunk=False).ratio()
