"""The collaboration protocol end to end on a real jupyter_server with real sockets."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from marimo_collab_ext.client import CollabError, ws_url
from marimo_collab_ext.persistence.notebook_file import parse_notebook


async def raw_socket(server, path="demo.py"):
    return await ws_connect(ws_url(server["url"], path), max_size=None,
                            additional_headers={"Authorization": f"token {server['token']}"})


async def request(ws, message):
    await ws.send(json.dumps(message) if not isinstance(message, str) else message)
    return json.loads(await ws.recv())


async def test_join_returns_the_notebook_and_identity(connect):
    client = await connect()
    response = client.join_response
    cells = response["notebook"]["cells"]
    assert len(cells) == 6
    assert cells[0]["code"] == "import marimo as mo"
    assert all(c["version"] == 0 for c in cells)
    assert response["self"]["role"] == "runner"  # the server's owner may do everything
    assert response["self"]["user"]["username"]
    assert response["kernel"]["status"] == "none"
    assert response["session"]


async def test_concurrent_typing_in_one_cell_converges(connect):
    clients = [await connect() for _ in range(3)]
    cell = clients[0].order[2]
    rng = random.Random(7)
    for round_ in range(60):
        for index, client in enumerate(clients):
            length = client.cells[cell].doc.length
            pos = rng.randint(0, length)
            if rng.random() < 0.3 and length > 2:
                client.edit(cell, {"from": pos - 1 if pos else 0, "to": min(pos + 1, length)})
            else:
                client.edit(cell, {"from": pos, "insert": f"{index}{round_}😀"})
        if round_ % 7 == 0:
            await asyncio.sleep(0.01)
    for client in clients:
        await client.flush()
    await asyncio.sleep(0.3)
    texts = {client.text(cell) for client in clients}
    assert len(texts) == 1
    late = await connect()
    assert late.text(cell) == texts.pop()
    assert sum(c.stale_answers for c in clients) == 0


async def test_save_writes_the_session_in_marimo_format(connect, jp_root_dir):
    client = await connect()
    cell = client.order[3]
    client.edit(cell, {"from": 0, "insert": "# edited\n"})
    await client.flush()
    response = await client.save()
    assert response["hash"]
    saved = parse_notebook((jp_root_dir / "demo.py").read_text())
    assert saved.cells[3].code.startswith("# edited\n")
    assert [c.code for c in saved.cells] == [client.text(cid) for cid in client.order]


async def test_autosave_after_edits_settle(connect, jp_root_dir):
    client = await connect()
    cell = client.order[0]
    client.edit(cell, {"from": 0, "insert": "# autosaved\n"})
    await client.flush()
    event = await client.next_event(lambda e: e["type"] == "saved", timeout=10)
    assert event["hash"]
    assert "# autosaved" in (jp_root_dir / "demo.py").read_text()


async def test_structure_ops_by_cell_id(connect, jp_root_dir):
    a, b = await connect(), await connect()
    first, second = a.order[0], a.order[1]
    response = await a.cells_ops([
        {"op": "create", "after": first, "code": "x = 1", "name": "_"},
        {"op": "move", "cell_id": second, "after": None},
        {"op": "rename", "cell_id": first, "name": "setup_imports"},
    ])
    created = response["cell_ids"][0]
    await asyncio.sleep(0.2)
    assert b.order == a.order
    assert b.order[0] == second and b.order[2] == created
    assert b.cells[first].name == "setup_imports"
    with pytest.raises(CollabError) as err:
        await b.cells_ops([{"op": "delete", "cell_id": created},
                           {"op": "delete", "cell_id": "nope"}])
    assert err.value.code == "unknown_cell"
    assert created in a.cells  # the whole batch was rejected


async def test_reconnect_catches_up_without_duplicates(connect):
    a, b = await connect(), await connect()
    cell = a.order[1]
    await b.close()
    a.edit(cell, {"from": 0, "insert": "A"})
    await a.flush()
    b.edit(cell, {"from": 0, "insert": "B"})  # typed while offline
    response = await b.reconnect()
    assert any("changes" in c for c in response["notebook"]["cells"])
    await b.flush()
    await asyncio.sleep(0.2)
    assert a.text(cell) == b.text(cell)
    assert a.text(cell).count("A") == 1 + a.join_response["notebook"]["cells"][1]["code"].count("A")
    assert "B" in a.text(cell)


async def test_compacted_history_answers_gone(connect, collab_settings):
    a = await connect()
    cell = a.order[0]
    version = a.cells[cell].doc.version
    for i in range(5):
        a.edit(cell, {"from": 0, "insert": str(i)})
        await a.flush()
    # max_history is set to 3 by the fixture override below
    with pytest.raises(CollabError) as err:
        await a.request({"type": "pull", "document_id": cell, "version": version})
    assert err.value.code == "stale" and err.value.response["gone"] is True


@pytest.fixture
def collab_settings(request):
    if request.node.name == "test_compacted_history_answers_gone":
        return {"max_history": 3}
    if request.node.name == "test_silent_peer_is_dropped_from_presence":
        return {"heartbeat_timeout": 1.0}
    return {}


@pytest.mark.parametrize("frame, code", [
    ("not json", "bad_request"),
    ("[1, 2]", "bad_request"),
    ('{"id": 5}', "bad_request"),
    ('{"type": "change", "document_id": "x", "version": 0, "updates": []}', "bad_request"),
])
async def test_malformed_frames_get_bad_request(server, notebook, frame, code):
    ws = await raw_socket(server)
    response = await request(ws, frame)
    assert response["type"] == "response" and response["status"] == "error"
    assert response["error"]["code"] == code and response["in_reply"] is None
    await ws.close()


async def test_bad_changes_are_rejected_and_change_nothing(server, notebook, connect):
    watcher = await connect()
    ws = await raw_socket(server)
    joined = await request(ws, {"type": "join", "id": 1, "peer_id": "p1"})
    cell = joined["notebook"]["cells"][0]
    length = len(cell["code"])
    cases = [
        ({"version": 0, "updates": [{"clientID": "c", "changes": [[length + 3, "x"]]}]},
         "invalid_change"),
        ({"version": 0, "updates": [{"clientID": "c", "changes": [-1]}]}, "invalid_change"),
        ({"version": 0, "updates": [{"clientID": "c", "changes": [length, [0, "a\nb"]]}]},
         "invalid_change"),
        ({"version": 0, "updates": [{"clientID": "c", "changes": [True, [0, "x"]]}]},
         "invalid_change"),
        ({"version": 0, "updates": [{"clientID": "c", "changes": [float(length)]}]},
         "invalid_change"),
        ({"version": 7, "updates": [{"clientID": "c", "changes": [length]}]}, "bad_request"),
        ({"version": -1, "updates": []}, "bad_request"),
        ({"version": 0, "updates": [{"clientID": "server", "changes": [[0, "x"], length]}]},
         "bad_request"),
        ({"version": 0, "updates": "nope"}, "bad_request"),
    ]
    for index, (fields, code) in enumerate(cases, start=2):
        response = await request(ws, {"type": "change", "id": index,
                                      "document_id": cell["id"], **fields})
        assert response["in_reply"] == index
        assert response["error"]["code"] == code, (fields, response)
    response = await request(ws, {"type": "change", "id": 99, "document_id": "nope",
                                  "version": 0, "updates": []})
    assert response["error"]["code"] == "unknown_cell"
    await asyncio.sleep(0.1)
    assert watcher.text(cell["id"]) == cell["code"]
    assert watcher.cells[cell["id"]].doc.version == 0
    await ws.close()


async def test_third_party_specs_are_accepted(server, notebook, connect):
    watcher = await connect()
    ws = await raw_socket(server)
    joined = await request(ws, {"type": "join", "id": 1, "peer_id": "p1"})
    cell = joined["notebook"]["cells"][0]
    await ws.send(json.dumps({"type": "change", "id": 2, "document_id": cell["id"], "version": 0,
                              "updates": [{"clientID": "vim-1",
                                           "changes": [{"from": 0, "to": 6, "insert": "😀"}]}]}))
    broadcast = json.loads(await ws.recv())
    assert broadcast["type"] == "change" and broadcast["version"] == 0
    ok = json.loads(await ws.recv())  # the broadcast comes before the sender's ok
    assert ok["status"] == "ok" and ok["version"] == 1
    await asyncio.sleep(0.1)
    assert watcher.text(cell["id"]) == "😀" + cell["code"][6:]
    await ws.close()


async def test_huge_message_closes_or_errors_and_changes_nothing(server, notebook, connect):
    watcher = await connect()
    ws = await raw_socket(server)
    await request(ws, {"type": "join", "id": 1, "peer_id": "big"})
    cell = watcher.order[0]
    frame = json.dumps({"type": "change", "id": 2, "document_id": cell, "version": 0,
                        "updates": [{"clientID": "c", "changes": [[0, "x" * (64 << 20)], 19]}]})
    try:
        await ws.send(frame)
        reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert reply["error"]["code"] == "too_large"
    except ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == 1009
    assert watcher.text(cell) == "import marimo as mo"
    other = await connect()  # the server is still up
    assert other.text(cell) == "import marimo as mo"


async def test_flood_is_rate_limited(server, notebook, collab_settings):
    ws = await raw_socket(server)
    await request(ws, {"type": "join", "id": 0, "peer_id": "flood"})
    for i in range(1, 1600):
        await ws.send(json.dumps({"type": "heartbeat", "id": i}))
    codes = set()
    for _ in range(1599):
        reply = json.loads(await ws.recv())
        codes.add(reply.get("error", {}).get("code", "ok"))
    assert codes == {"ok", "rate_limited"}
    await ws.close()


async def test_disk_rewrite_merges_and_keeps_live_edits(connect, jp_root_dir):
    a = await connect()
    live_cell, disk_cell = a.order[3], a.order[5]
    a.edit(live_cell, {"from": 0, "insert": "# typed live\n"})
    await a.flush()
    path = jp_root_dir / "demo.py"
    text = path.read_text()
    assert 'print("largest square:", max(squares))' in text  # autosave may or may not have run
    path.write_text(text.replace('print("largest square:", max(squares))',
                                 'print("rewritten on disk")'))
    event = await a.next_event(lambda e: e["type"] == "file_status", timeout=10)
    assert event["status"] == "merged"
    await asyncio.sleep(0.1)
    assert a.text(disk_cell) == 'print("rewritten on disk")'
    assert a.text(live_cell).startswith("# typed live\n")
    b = await connect()
    assert b.text(disk_cell) == a.text(disk_cell) and b.text(live_cell) == a.text(live_cell)
    await a.next_event(lambda e: e["type"] == "saved", timeout=10)
    final = path.read_text()
    assert "# typed live" in final and "rewritten on disk" in final


async def test_deleted_file_is_announced_and_save_recreates_it(connect, jp_root_dir):
    a = await connect()
    (jp_root_dir / "demo.py").unlink()
    event = await a.next_event(lambda e: e["type"] == "file_status", timeout=10)
    assert event["status"] == "missing" and "deleted" in event["message"]
    await a.save()
    assert parse_notebook((jp_root_dir / "demo.py").read_text()).cells[0].code == a.text(a.order[0])


async def test_change_broadcasts_name_the_peer(connect):
    a, b = await connect(), await connect()
    a.edit(a.order[0], {"from": 0, "insert": "# a\n"})
    event = await b.next_event(lambda e: e["type"] == "change")
    assert event["peer_id"] == a.peer_id


async def test_silent_peer_is_dropped_from_presence(server, notebook, connect, collab_settings):
    a = await connect()
    ws = await raw_socket(server)
    await request(ws, {"type": "join", "id": 1, "peer_id": "silent"})
    joined = await a.next_event(lambda e: e["type"] == "presence" and e["event"] == "join")
    assert joined["peer"]["peer_id"] == "silent"
    # `a` keeps talking; the raw socket says nothing more
    for _ in range(8):
        await a.request({"type": "heartbeat"})
        await asyncio.sleep(0.2)
    left = await a.next_event(lambda e: e["type"] == "presence" and e["event"] == "leave")
    assert left["peer"]["peer_id"] == "silent"
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd.code == 4408


async def test_cursor_past_the_end_is_refused_and_not_relayed(server, notebook, connect):
    a = await connect()
    ws = await raw_socket(server)
    joined = await request(ws, {"type": "join", "id": 1, "peer_id": "cursor"})
    cell = joined["notebook"]["cells"][0]
    await ws.send(json.dumps({"type": "cursor", "document_id": cell["id"], "version": 0,
                              "anchor": 5, "head": 10_000}))
    reply = json.loads(await ws.recv())
    assert reply["error"]["code"] == "bad_request"
    await ws.send(json.dumps({"type": "cursor", "document_id": cell["id"], "version": 0,
                              "anchor": 2, "head": 4}))
    relayed = await a.next_event(lambda e: e["type"] == "cursor")
    assert (relayed["anchor"], relayed["head"]) == (2, 4)
    await ws.close()
