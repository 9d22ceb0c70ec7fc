"""Roles on a plain jupyter_server: every message is authorized for the sender's role."""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado.httpclient import HTTPClientError
from tornado.websocket import websocket_connect
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from marimo_collab_ext.client import CollabClient, CollabError, ws_url

pytestmark = pytest.mark.people  # tokens name people (tests/identities.py)


@pytest.fixture
def as_user(server, notebook):
    async def _as(username: str) -> CollabClient:
        return await CollabClient.connect(server["url"], notebook, token=f"{username}-token")
    return _as


async def expect_forbidden(awaitable) -> None:
    with pytest.raises(CollabError) as err:
        await awaitable
    assert err.value.code == "forbidden"


async def test_viewer_cannot_change_structure_save_or_run(as_user, jp_root_dir):
    rita, vera = await as_user("rita"), await as_user("vera")
    assert vera.join_response["self"]["role"] == "viewer"
    cell = vera.order[0]
    before = (jp_root_dir / "demo.py").read_text()
    await expect_forbidden(vera.request({
        "type": "change", "document_id": cell, "version": 0,
        "updates": [{"clientID": "v", "changes": [[0, "evil"], 19]}]}))
    await expect_forbidden(vera.cells_ops([{"op": "delete", "cell_id": cell}]))
    await expect_forbidden(vera.save())
    await expect_forbidden(vera.run([cell]))
    await expect_forbidden(vera.set_ui_value("x", 1))
    for kind in ("interrupt", "restart_kernel"):
        await expect_forbidden(vera.request({"type": kind}))
    await expect_forbidden(vera.request({"type": "stdin", "text": "x"}))
    await asyncio.sleep(0.2)
    assert rita.text(cell) == "import marimo as mo" and rita.cells[cell].doc.version == 0
    assert rita.order == vera.order
    assert (jp_root_dir / "demo.py").read_text() == before
    await vera.request({"type": "pull", "document_id": cell, "version": 0})  # reading is fine
    await rita.close()
    await vera.close()


async def test_editor_edits_but_cannot_run(as_user):
    eddie = await as_user("eddie")
    assert eddie.join_response["self"]["role"] == "editor"
    cell = eddie.order[0]
    eddie.edit(cell, {"from": 0, "insert": "# eddie\n"})
    await eddie.flush()
    await eddie.save()
    await expect_forbidden(eddie.run([cell]))
    await eddie.close()


async def test_runner_runs(as_user):
    rita = await as_user("rita")
    assert rita.join_response["self"]["role"] == "runner"
    await rita.run(rita.order)
    status = await rita.next_event(lambda e: e["type"] == "kernel_status", timeout=60)
    assert status["status"] in ("starting", "ready", "busy", "idle")
    await rita.close()


async def test_presence_shows_the_authenticated_identity(server, notebook, as_user):
    rita = await as_user("rita")
    ws = await ws_connect(ws_url(server["url"], notebook),
                          additional_headers={"Authorization": "token vera-token"})
    await ws.send(json.dumps({"type": "join", "id": 1, "peer_id": "spoof",
                              "user": {"username": "rita", "display_name": "Rita (fake)"},
                              "role": "runner"}))
    response = json.loads(await ws.recv())
    assert response["self"]["user"]["username"] == "vera"
    assert response["self"]["role"] == "viewer"
    event = await rita.next_event(lambda e: e["type"] == "presence")
    assert event["peer"]["user"]["username"] == "vera"
    assert event["peer"]["user"]["display_name"] == "Vera Example"
    assert event["peer"]["role"] == "viewer"
    await ws.close()
    await rita.close()


async def test_unauthenticated_upgrade_gets_403(server, notebook):
    for headers in ({}, {"Authorization": "token wrong"}):
        with pytest.raises(InvalidStatus) as err:
            await ws_connect(ws_url(server["url"], notebook), additional_headers=headers)
        assert err.value.response.status_code == 403


async def test_foreign_origin_upgrade_gets_403(server, notebook, jp_http_port):
    url = ws_url(server["url"], notebook)
    for origin, allowed in (("http://evil.example", False),
                            (f"http://127.0.0.1:{jp_http_port}", True)):
        headers = {"Authorization": "token rita-token", "Origin": origin,
                   "Host": f"127.0.0.1:{jp_http_port}"}
        if allowed:
            ws = await websocket_connect(_request(url, headers))
            ws.close()
        else:
            with pytest.raises(HTTPClientError) as err:
                await websocket_connect(_request(url, headers))
            assert err.value.code == 403


def _request(url: str, headers: dict):
    from tornado.httpclient import HTTPRequest

    return HTTPRequest(url, headers=headers)
