"""Acknowledged edits survive kill -9 of the server, with no save in between."""

from __future__ import annotations

from pathlib import Path

from marimo_collab_ext.client import CollabClient

from .servers import ServerProcess

EXAMPLE = Path(__file__).parent.parent / "examples" / "demo.py"




async def test_acknowledged_edits_survive_kill_9(server_dirs):
    root, journal = server_dirs
    original = (root / "demo.py").read_text()
    # autosave far away: only the journal can bring the edits back
    server = ServerProcess(root, journal, {"autosave_delay": 3600, "autosave_max_delay": 3600,
                                           "disk_poll_interval": 3600}).start()
    try:
        client = await CollabClient.connect(server.url, "demo.py", token=server.token)
        session, cells = client.session, list(client.order)
        for i in range(20):
            cell = cells[i % len(cells)]
            client.edit(cell, {"from": 0, "insert": f"# edit {i} 😀\n"})
            await client.flush()  # acknowledged
        expected = {cid: client.text(cid) for cid in cells}
        versions = {cid: client.cells[cid].doc.version for cid in cells}
        server.kill()
        await client.close()
        assert (root / "demo.py").read_text() == original  # nothing was saved

        server = ServerProcess(root, journal, {"autosave_delay": 3600}, port=server.port,
                               token=server.token).start()
        again = await CollabClient.connect(server.url, "demo.py", token=server.token)
        assert again.session == session  # same epoch: ids and versions kept
        assert {cid: again.text(cid) for cid in again.order} == expected
        assert {cid: again.cells[cid].doc.version for cid in again.order} == versions
        saved = await again.save()
        assert saved["hash"]
        assert "# edit 19 😀" in (root / "demo.py").read_text()
        await again.close()
    finally:
        server.stop()


async def test_edits_typed_before_a_kill_resume_by_catch_up(server_dirs):
    root, journal = server_dirs
    server = ServerProcess(root, journal, {"autosave_delay": 3600}).start()
    try:
        a = await CollabClient.connect(server.url, "demo.py", token=server.token)
        cell = a.order[1]
        a.edit(cell, {"from": 0, "insert": "A"})
        await a.flush()
        server.kill()
        a.edit(cell, {"from": 0, "insert": "offline "})  # typed while the server was down
        server = ServerProcess(root, journal, {"autosave_delay": 3600}, port=server.port,
                               token=server.token).start()
        response = await a.reconnect()
        assert response["session"] == a.session and not a.lost_text
        await a.flush()
        b = await CollabClient.connect(server.url, "demo.py", token=server.token)
        assert b.text(cell) == a.text(cell)
        assert b.text(cell).startswith("offline A")
        await a.close()
        await b.close()
    finally:
        server.stop()
