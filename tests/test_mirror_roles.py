"""The mirror under roles: a viewer's file follows the session, and its own saves are kept."""

from __future__ import annotations

import asyncio

import pytest

from marimo_collab_ext.client import CollabClient
from marimo_collab_ext.client.mirror import FileMirror

from .test_mirror import cells, local_edit, until

pytestmark = pytest.mark.people  # tokens name people (tests/identities.py)


async def test_viewer_mirror_follows_and_never_overwrites_its_own_save(server, notebook,
                                                                       tmp_path):
    vera = await CollabClient.connect(server["url"], notebook, token="vera-token")
    eddie = await CollabClient.connect(server["url"], notebook, token="eddie-token")
    path = tmp_path / "vera.py"
    lines: list[str] = []
    mirror = FileMirror(vera, path, log=lines.append, poll_interval=0.05, debounce=0.05)
    await mirror.start()
    task = asyncio.ensure_future(mirror.run())
    try:
        eddie.edit(eddie.order[2], {"from": 0, "insert": "# eddie\n"})
        await eddie.flush()
        await until(lambda: cells(path)[2].startswith("# eddie\n"), what="eddie's edit")

        local_edit(path, "import marimo as mo", "import marimo as mo  # vera")
        await until(lambda: any("only view" in line for line in lines), what="the refusal")
        mine = path.read_text()
        eddie.edit(eddie.order[4], {"from": 0, "insert": "# more\n"})
        await eddie.flush()
        await asyncio.sleep(0.5)
        assert path.read_text() == mine  # her unsent save is not overwritten
        assert not eddie.text(eddie.order[0]).endswith("# vera")
        assert not task.done()

        local_edit(path, "import marimo as mo  # vera", "import marimo as mo")  # undo
        await until(lambda: cells(path)[4].startswith("# more\n"), what="following again")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await vera.close()
        await eddie.close()
