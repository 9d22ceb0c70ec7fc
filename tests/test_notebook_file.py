"""Round trips of marimo's `.py` format through persistence.notebook_file.

What we write must be marimo's normal form, reach a fixed point, and load in marimo.
"""

from __future__ import annotations

import ast

import pytest
from marimo._ast.load import load_app

from marimo_collab_ext.persistence.notebook_file import (
    CellData,
    NotebookData,
    NotebookParseError,
    content_hash,
    is_marimo_notebook,
    normal_code,
    parse_notebook,
    saved_codes,
    serialize_notebook,
)

FULL = '''# /// script
# dependencies = ["marimo"]
# ///
"""A docstring header."""
# a comment

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="My App")

with app.setup:
    import math


@app.cell(hide_code=True)
def _():
    import marimo as mo

    return (mo,)


@app.cell
def named(mo):
    x = "héllo 😀 👩‍💻"
    mo.md(x)
    return (x,)


app._unparsable_cell(
    r"""
    def broken(:
        pass
    """,
    name="bad"
)


@app.function
def add(a, b):
    return a + b


@app.class_definition
class Foo:
    pass


@app.cell
def _():
    return


@app.cell(column=1, disabled=True)
def _(x):
    y = x  # trailing comment
    return


if __name__ == "__main__":
    app.run()
'''


def _marimo_loads(tmp_path, text: str):
    path = tmp_path / "nb.py"
    path.write_text(text, encoding="utf-8")
    app = load_app(path)
    assert app is not None
    manager = app._cell_manager
    return list(manager.codes()), list(manager.names()), [c.hide_code for c in manager.configs()]


def test_full_notebook_survives_round_trip():
    nb = parse_notebook(FULL)
    assert nb.header is not None and '"""A docstring header."""' in nb.header
    assert "# /// script" in nb.header
    assert nb.app == {"width": "medium", "app_title": "My App"}
    assert [c.name for c in nb.cells] == ["setup", "_", "named", "bad", "add", "Foo", "_", "_"]
    assert nb.cells[0].code == "import math"
    assert nb.cells[1].config == {"hide_code": True}
    assert nb.cells[2].code == 'x = "héllo 😀 👩‍💻"\nmo.md(x)'
    assert nb.cells[3].code == "def broken(:\n    pass"
    assert nb.cells[6].code == ""
    assert nb.cells[7].config == {"column": 1, "disabled": True}
    # The file above is already marimo's normal form: writing it back changes nothing.
    assert serialize_notebook(nb) == FULL


def test_serialize_parse_serialize_is_a_fixed_point():
    typed = NotebookData(
        cells=[
            CellData("import marimo as mo\n\n\n", config={"hide_code": True}),
            CellData("\n\nx = 1   \n# note\n\n"),
            CellData("def f(:\n  pass\n", name="oops"),
            CellData('s = """quoted \\\\ backslash"""\nprint(s'),
            CellData(""),
            CellData("\tif True:\n\t\ty = 2\n"),
            CellData("emoji = '😀👩‍💻'", name="emoji_cell", config={"column": 2}),
        ],
        app={"width": "full", "app_title": "Tïtle"},
        header="# just a comment\n",
    )
    first = serialize_notebook(typed)
    again = parse_notebook(first)
    assert serialize_notebook(again) == first
    assert parse_notebook(serialize_notebook(again)) == again
    assert [c.name for c in again.cells] == ["_", "_", "oops", "_", "_", "_", "emoji_cell"]
    assert again.cells[2].code == "def f(:\n  pass"
    assert again.cells[3].code == 's = """quoted \\\\ backslash"""\nprint(s'
    assert again.cells[6].config == {"column": 2}
    assert again.app == {"width": "full", "app_title": "Tïtle"}
    assert again.header is not None and again.header.startswith("# just a comment")


def test_file_holds_normal_form_not_the_typed_text():
    typed = NotebookData(cells=[CellData("x = 1\n\n\n")])
    nb = parse_notebook(serialize_notebook(typed))
    assert nb.cells[0].code == "x = 1"


def test_unparsable_cell_keeps_name_and_config():
    nb = NotebookData(cells=[CellData("x = (", name="half", config={"hide_code": True})])
    text = serialize_notebook(nb)
    assert "app._unparsable_cell(" in text
    back = parse_notebook(text)
    assert back.cells == [CellData("x = (", name="half", config={"hide_code": True})]


def test_cell_with_syntax_error_typed_live_is_written_unparsable(tmp_path):
    nb = NotebookData(cells=[CellData("import os"), CellData("for i in range(3)\n    print(i)")])
    text = serialize_notebook(nb)
    ast.parse(text)  # the file as a whole stays valid Python
    back = parse_notebook(text)
    assert [c.code for c in back.cells] == ["import os", "for i in range(3)\n    print(i)"]


def test_setup_cell_round_trips_with_hide_code():
    nb = NotebookData(
        cells=[CellData("import math", name="setup", config={"hide_code": True}), CellData("y = 1")]
    )
    text = serialize_notebook(nb)
    assert "with app.setup(hide_code=True):" in text
    assert parse_notebook(text).cells == nb.cells


def test_marimo_loads_what_we_write(tmp_path):
    nb = NotebookData(
        cells=[
            CellData("import marimo as mo", config={"hide_code": True}),
            CellData("x = '😀'\nmo.md(x)", name="show"),
            CellData("def g(:", name="bad"),
            CellData("def add(a, b):\n    return a + b", name="add"),
        ],
        app={"width": "medium"},
    )
    codes, names, hidden = _marimo_loads(tmp_path, serialize_notebook(nb))
    assert codes == [c.code for c in nb.cells]
    assert names[:3] == ["_", "show", "bad"]
    assert names[3].endswith("add")  # marimo marks top-level functions with a prefix
    assert hidden == [True, False, False, False]


def test_marimo_loads_the_full_example(tmp_path):
    text = serialize_notebook(parse_notebook(FULL))
    codes, _names, _hidden = _marimo_loads(tmp_path, text)
    assert codes == [c.code for c in parse_notebook(FULL).cells]


def test_lone_surrogates_are_written_as_replacement_character():
    nb = NotebookData(cells=[CellData("a = '\ud83d'\nb = '\udc00x'\nc = '\ud83d\ude00'")])
    text = serialize_notebook(nb)
    text.encode("utf-8")  # strict: no surrogate left
    code = parse_notebook(text).cells[0].code
    assert code == "a = '\ufffd'\nb = '\ufffdx'\nc = '😀'"


def test_empty_notebook_round_trips():
    text = serialize_notebook(NotebookData(cells=[]))
    assert is_marimo_notebook(text)
    assert parse_notebook(text).cells == []
    assert parse_notebook("").cells == []
    assert parse_notebook("   \n").cells == []


@pytest.mark.parametrize(
    "text",
    [
        "import os\nprint(os.getcwd())\n",
        "import marimo\n\nx = 1\n",
        '"""only a docstring"""\nimport json\njson.dumps(1)\n',
    ],
)
def test_non_marimo_files_raise_a_clear_error(text):
    with pytest.raises(NotebookParseError, match="marimo"):
        parse_notebook(text)
    assert not is_marimo_notebook(text)


def test_is_marimo_notebook_accepts_alias():
    text = "import marimo as mo\napp = mo.App()\n"
    assert is_marimo_notebook(text)
    assert is_marimo_notebook(FULL)
    assert not is_marimo_notebook("import marimo\nmy_app = marimo.App()\n")


def test_stray_statements_are_reported_not_hidden():
    text = FULL.replace("@app.function\n", "x_stray = 1\n\n\n@app.function\n", 1)
    assert parse_notebook(text).warnings


def test_content_hash_is_stable_and_never_raises():
    assert content_hash("abc") == content_hash("abc")
    assert content_hash("abc") != content_hash("abd")
    assert len(content_hash("\ud800")) == 64


def test_normal_code_predicts_what_the_file_holds():
    cells = [
        CellData("x = 1\n\n\n"),
        CellData("\n\nx = 1   \n# note\n\n"),
        CellData("  # only an indented comment"),
        CellData("\n  y = (\n\t\n  z\n"),
        CellData("print('😀')\r\n"),
    ]
    text = serialize_notebook(NotebookData(cells=cells))
    assert [c.code for c in parse_notebook(text).cells] == [normal_code(c.code) for c in cells]


def test_saved_codes_follow_marimo_rewrites_and_setup_moves():
    cells = [
        CellData("import marimo as mo"),
        CellData("mo.md(r'''# Title''')"),
        CellData("import math", name="setup"),
        CellData("def add(a, b):\n    return a + b\n"),
    ]
    nb = NotebookData(cells=cells)
    text = serialize_notebook(nb)
    read = parse_notebook(text).cells
    assert read[0].name == "setup"
    codes = saved_codes(nb, text)
    assert codes[2] == "import math"
    assert codes[0] == "import marimo as mo"
    assert codes[1] == read[2].code  # marimo rewrites markdown calls its own way
    assert codes[3] == "def add(a, b):\n    return a + b"


def test_saved_codes_keep_an_empty_setup_cell_aligned():
    nb = NotebookData(cells=[CellData("a = 1"), CellData("", name="setup"), CellData("b = 2")])
    text = serialize_notebook(nb)
    assert [c.code for c in parse_notebook(text).cells] == ["a = 1", "b = 2"]
    assert saved_codes(nb, text) == ["a = 1", "", "b = 2"]
