"""The ordered list of cells and their names and configs; `cells` ops by cell id (pure)."""

from __future__ import annotations

import keyword
import re
import secrets
import string
from dataclasses import dataclass, field

from ..cell_config import config_problem
from .errors import BadRequest, UnknownCell

_CELL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ID_ALPHABET = string.ascii_letters


@dataclass
class CellMeta:
    name: str = "_"
    config: dict = field(default_factory=dict)


@dataclass
class Created:
    """A `create` op as applied: the room makes the cell's authority from `code`."""

    cell_id: str
    code: str


def new_cell_id(taken: set[str] | dict) -> str:
    """A short random id (marimo style) not in `taken`."""
    base = len(_ID_ALPHABET)
    while True:
        n = secrets.randbelow(base**4)  # one draw from the OS, not four
        cell_id = "".join(_ID_ALPHABET[n // base**i % base] for i in range(4))
        if cell_id not in taken:
            return cell_id


def check_name(name: object) -> str:
    if not isinstance(name, str) or not (
        name == "_" or (name.isidentifier() and not keyword.iskeyword(name))
    ):
        raise BadRequest(f"cell name must be a Python identifier or '_', got {name!r}")
    if len(name) > 200:
        raise BadRequest("cell name too long")
    return name


def _check_config(config: object) -> dict:
    if not isinstance(config, dict):
        raise BadRequest("cell config must be an object")
    for key, value in config.items():
        problem = config_problem(key, value)
        if problem is not None:
            raise BadRequest(problem)
    return dict(config)


class NotebookStructure:
    """Cell order, names and configs, changed only by validated, all-or-nothing op batches."""

    def __init__(self, cells: list[tuple[str, CellMeta]], version: int = 0) -> None:
        self.order = [cell_id for cell_id, _ in cells]
        self.meta = dict(cells)
        self.version = version

    def __contains__(self, cell_id: object) -> bool:
        return cell_id in self.meta

    def __len__(self) -> int:
        return len(self.order)

    def apply(self, ops: object, max_cells: int) -> tuple[list[dict], list[Created], list[str]]:
        """Apply a batch of `cells` ops; returns (ops as applied, created cells, deleted ids).

        Raises BadRequest / UnknownCell and changes nothing when any op is invalid.
        """
        if not isinstance(ops, list) or not ops:
            raise BadRequest("`ops` must be a non-empty list")
        if len(ops) > 1000:
            raise BadRequest("too many ops in one batch")
        order = list(self.order)
        meta = {cell_id: CellMeta(m.name, dict(m.config)) for cell_id, m in self.meta.items()}
        applied: list[dict] = []
        created: list[Created] = []
        deleted: list[str] = []
        for op in ops:
            if not isinstance(op, dict) or not isinstance(op.get("op"), str):
                raise BadRequest("each op must be an object with a string `op`")
            kind = op["op"]
            if kind == "create":
                cell_id = op.get("cell_id")
                if cell_id is None:
                    cell_id = new_cell_id(meta)
                elif not isinstance(cell_id, str) or not _CELL_ID.match(cell_id):
                    raise BadRequest("cell_id must match [A-Za-z0-9_-]{1,64}")
                elif cell_id in meta or cell_id in deleted:
                    raise BadRequest(f"cell {cell_id} already exists")
                code = op.get("code", "")
                if not isinstance(code, str):
                    raise BadRequest("`code` must be a string")
                name = check_name(op.get("name", "_"))
                config = _check_config(op.get("config", {}))
                index = self._insert_index(order, op.get("after"))
                if len(order) >= max_cells:
                    raise BadRequest(f"a notebook may have at most {max_cells} cells")
                order.insert(index, cell_id)
                meta[cell_id] = CellMeta(name, config)
                created.append(Created(cell_id, code))
                applied.append({"op": "create", "cell_id": cell_id, "after": op.get("after"),
                                "code": code, "name": name, "config": config})
            elif kind == "delete":
                cell_id = self._existing(meta, op)
                order.remove(cell_id)
                del meta[cell_id]
                deleted.append(cell_id)
                applied.append({"op": "delete", "cell_id": cell_id})
            elif kind == "move":
                cell_id = self._existing(meta, op)
                if op.get("after") == cell_id:
                    raise BadRequest("a cell cannot move after itself")
                order.remove(cell_id)
                order.insert(self._insert_index(order, op.get("after")), cell_id)
                applied.append({"op": "move", "cell_id": cell_id, "after": op.get("after")})
            elif kind == "rename":
                cell_id = self._existing(meta, op)
                meta[cell_id].name = check_name(op.get("name"))
                applied.append({"op": "rename", "cell_id": cell_id, "name": meta[cell_id].name})
            elif kind == "config":
                cell_id = self._existing(meta, op)
                meta[cell_id].config = _check_config(op.get("config"))
                applied.append({"op": "config", "cell_id": cell_id,
                                "config": meta[cell_id].config})
            else:
                raise BadRequest(f"unknown op {kind!r}")
        self.order, self.meta = order, meta
        self.version += 1
        return applied, created, deleted

    @staticmethod
    def _existing(meta: dict, op: dict) -> str:
        cell_id = op.get("cell_id")
        if not isinstance(cell_id, str):
            raise BadRequest("`cell_id` must be a string")
        if cell_id not in meta:
            raise UnknownCell(f"no cell {cell_id}", cell_id=cell_id)
        return cell_id

    @staticmethod
    def _insert_index(order: list[str], after: object) -> int:
        if after is None:
            return 0
        if not isinstance(after, str):
            raise BadRequest("`after` must be a cell id or null")
        if after not in order:
            raise UnknownCell(f"no cell {after}", cell_id=after)
        return order.index(after) + 1
