"""A journal directory another local user could write to is refused, clearly (issue #14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect

from marimo_collab_ext.client import ws_url


@pytest.fixture
def journal_dir(tmp_path: Path, capfd) -> Path:
    """A journal directory someone else could write to (as if another user made it first).

    `capfd` starts before the server, so the test reads what the server logged at start."""
    path = tmp_path / "taken"
    path.mkdir()
    path.chmod(0o777)
    return path


async def test_an_unsafe_journal_dir_is_refused_with_what_to_set(journal_dir, server, notebook,
                                                                 capfd):
    # said at start, before anyone opens a notebook
    logged = [line for line in capfd.readouterr().err.splitlines() if "[E " in line]
    assert any(str(journal_dir) in m and "c.MarimoCollab.journal_dir" in m for m in logged)
    async with ws_connect(ws_url(server["url"], notebook), additional_headers={
            "Authorization": f"token {server['token']}"}) as ws:
        await ws.send(json.dumps({"type": "join", "id": 1, "peer_id": "p"}))
        reply = json.loads(await ws.recv())
    assert reply["status"] == "error"
    message = reply["error"]["message"]
    assert str(journal_dir) in message and "c.MarimoCollab.journal_dir" in message
    assert "other users can write" in message
