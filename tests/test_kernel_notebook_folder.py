"""The notebook's folder: its files never break the kernel, its modules import."""

from __future__ import annotations

import shutil
from pathlib import Path

import marimo

from .test_kernel_protocol import wait_for_output

USES_HELPER = '''import marimo

app = marimo.App()


@app.cell
def _():
    import helper
    helper.greeting()
    return


if __name__ == "__main__":
    app.run()
'''


async def test_notebook_named_like_a_module_marimo_imports(connect, jp_root_dir: Path):
    # `marimo tutorial markdown` saves markdown.py; marimo itself imports `markdown`.
    folder = jp_root_dir / "notes"
    folder.mkdir()
    shutil.copy(Path(marimo.__file__).parent / "_tutorials" / "markdown.py",
                folder / "markdown.py")
    (folder / "helper.py").write_text("def greeting():\n    return 'hello from the sibling'\n")
    (folder / "uses_helper.py").write_text(USES_HELPER)

    tutorial = await connect("notes/markdown.py")
    await tutorial.run(tutorial.order)
    await wait_for_output(tutorial, tutorial.order[0], "Hello, Markdown!")

    # Another notebook of the same folder: its kernel starts, and its code imports a sibling.
    user = await connect("notes/uses_helper.py")
    await user.run(user.order)
    await wait_for_output(user, user.order[0], "hello from the sibling")
