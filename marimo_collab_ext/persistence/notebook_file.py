"""Read and write marimo's `.py` notebook format with marimo's own converters.

This is the only module of `persistence/` that imports `marimo._*`: the file
format is marimo's, so marimo parses it and marimo writes its normal form.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from marimo._ast.app_config import _AppConfig
from marimo._ast.cell import CellConfig
from marimo._ast.codegen import generate_filecontents
from marimo._ast.dedent import fixed_dedent
from marimo._ast.names import DEFAULT_CELL_NAME, SETUP_CELL_NAME
from marimo._ast.parse import MarimoFileError
from marimo._internal.converters import MarimoConvert
from marimo._schemas.serialization import SetupCell, UnparsableCell

from ..cell_config import clean_config

__all__ = [
    "CellData",
    "NotebookData",
    "NotebookParseError",
    "content_hash",
    "is_marimo_notebook",
    "normal_code",
    "parse_notebook",
    "saved_codes",
    "serialize_notebook",
]

_SURROGATE = re.compile("[\ud800-\udfff]")
_IMPORT = re.compile(r"^import\s+marimo(?:\s+as\s+([A-Za-z_]\w*))?\s*(?:#.*)?$", re.MULTILINE)


class NotebookParseError(ValueError):
    """The text is not a marimo notebook marimo can read.

    The message says why, in words a user can act on.
    """


@dataclass
class CellData:
    """One cell as the file holds it: code, name and marimo cell config.

    `config` holds only the keys that differ from marimo's defaults.
    """

    code: str
    name: str = DEFAULT_CELL_NAME
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class NotebookData:
    """Everything of a notebook file that survives a round trip through marimo.

    A setup cell (`with app.setup:`) is the cell named "setup", first in `cells`.
    """

    cells: list[CellData]
    app: dict[str, Any] = field(default_factory=dict)
    header: str | None = None
    # Informational only: what marimo wrote, and what it could not keep
    # (e.g. stray statements between cells, which a save drops).
    generated_with: str | None = None
    warnings: list[str] = field(default_factory=list)


def parse_notebook(text: str) -> NotebookData:
    """Parse a marimo `.py` notebook into cells, app options and header.

    Raises NotebookParseError for text that is not a marimo notebook; blank text is empty.
    """
    if not text.strip():
        # marimo itself opens an empty file as a new, empty notebook.
        return NotebookData(cells=[])
    try:
        ir = MarimoConvert.from_py(text).to_ir()
    except MarimoFileError as exc:
        raise NotebookParseError(f"not a marimo notebook: {exc}") from exc
    except (SyntaxError, ValueError, AssertionError) as exc:
        raise NotebookParseError(f"marimo could not read this notebook: {exc}") from exc
    if not ir.valid:
        raise NotebookParseError(
            "not a marimo notebook: expected `import marimo` and `app = marimo.App(...)`"
        )
    warnings = [_describe(v) for v in ir.violations]
    cells = [_cell_from_ir(cell, warnings) for cell in ir.cells]
    header = ir.header.value if ir.header and ir.header.value.strip() else None
    return NotebookData(
        cells=cells,
        app=_normal_app_options(ir.app.options),
        header=header,
        generated_with=ir.version,
        warnings=warnings,
    )


def serialize_notebook(nb: NotebookData) -> str:
    """Write a notebook in marimo's normal `.py` form (what marimo itself saves).

    Lone UTF-16 surrogates, which a browser document may hold, are written as U+FFFD.
    """
    codes = [normal_code(cell.code) for cell in nb.cells]
    names = [_clean(cell.name) or DEFAULT_CELL_NAME for cell in nb.cells]
    configs = [CellConfig.from_dict(cell.config, warn=False) for cell in nb.cells]
    app = _AppConfig.from_untrusted_dict(
        {k: _clean(v) if isinstance(v, str) else v for k, v in nb.app.items()}, silent=True
    )
    header = _clean(nb.header) if nb.header and nb.header.strip() else None
    return generate_filecontents(codes, names, configs, config=app, header_comments=header)


def normal_code(code: str) -> str:
    """The code of a cell as the file will hold it (and parse_notebook return it).

    The room keeps this as a cell's saved code, the base of an external-change merge.
    """
    # marimo's parser drops one trailing newline per round trip; strip them all
    # so one save is a fixed point.
    code = fixed_dedent(_clean(code).rstrip())
    if _compiles(code):
        return code
    # Unparsable cells are read back through textwrap.dedent, stripped at both
    # ends, with blank lines emptied.
    lines = code.strip().split("\n")
    return "\n".join("" if not line.strip(" \t") else line for line in lines)


def saved_codes(nb: NotebookData, text: str) -> list[str]:
    """For each cell of `nb`, its code as `text` (= serialize_notebook(nb)) holds it.

    Exact where normal_code only predicts: marimo also reformats markdown and function cells.
    """
    try:
        read = [cell.code for cell in parse_notebook(text).cells]
    except NotebookParseError:
        read = []
    codes = [normal_code(cell.code) for cell in nb.cells]
    names = [cell.name for cell in nb.cells]
    setup = names.index(SETUP_CELL_NAME) if SETUP_CELL_NAME in names else None
    if len(read) == len(codes):
        if setup and read and _first_is_setup(text):
            # marimo moves a (compilable) setup cell to the top of the file.
            read.insert(setup, read.pop(0))
        return read
    if setup is not None and len(read) == len(codes) - 1:
        # An empty setup cell is not written at all.
        read.insert(setup, "")
        return read
    return codes


def is_marimo_notebook(text: str) -> bool:
    """Cheap check that a `.py` file looks like a marimo notebook.

    True when it imports marimo and assigns `app = marimo.App(...)` at top level.
    """
    for match in _IMPORT.finditer(text):
        alias = re.escape(match.group(1) or "marimo")
        if re.search(rf"^app\s*=\s*{alias}\.App\s*\(", text[match.end() :], re.MULTILINE):
            return True
    return False


def content_hash(text: str) -> str:
    """Stable hash of file contents, to tell our own writes from external ones.

    SHA-256 of the UTF-8 bytes, hex; never raises, even on lone surrogates.
    """
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _cell_from_ir(cell: Any, warnings: list[str]) -> CellData:
    options = dict(cell.options)
    name = cell.name
    if isinstance(cell, UnparsableCell):
        # marimo keeps an unparsable cell's name among its kwargs; lift it out
        # so the name survives (marimo's own IR round trip loses it).
        name = str(options.pop("name", name) or DEFAULT_CELL_NAME)
    if isinstance(cell, SetupCell):
        name = SETUP_CELL_NAME
    config = CellConfig.from_dict(options, warn=False).asdict_without_defaults()
    # marimo keeps whatever literal the file holds (`hide_code="yes"`, `column=[1, 2]`) and
    # would write it back as broken code; the session takes only marimo's typed values.
    config, dropped = clean_config(config)
    warnings.extend(f"cell {name}: {why}" for why in dropped)
    return CellData(code=cell.code, name=name, config=config)


def _normal_app_options(options: dict[str, Any]) -> dict[str, Any]:
    # Only what marimo writes back: non-default, recognised options.
    return _AppConfig.from_untrusted_dict(options, silent=True).asdict_difference()


def _describe(violation: Any) -> str:
    line = f" (line {violation.lineno})" if violation.lineno else ""
    return f"{violation.description}{line}"


def _first_is_setup(text: str) -> bool:
    return re.search(r"^(?:async\s+)?with\s+app\.setup\b", text, re.MULTILINE) is not None


def _compiles(code: str) -> bool:
    # The same test marimo's codegen applies before writing a cell as a function.
    try:
        compile(code, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def _clean(text: str) -> str:
    if not _SURROGATE.search(text):
        return text
    # Pairs become their character, lone halves U+FFFD, as a browser would encode them.
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
