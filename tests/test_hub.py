"""Permissions under a real JupyterHub 6.1: shares, read-only roles, no access, revocation.

Hub config: tests/hub/jupyterhub_config.py (docs/jupyterhub.md); HubScopeAuthorizer enabled.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import websockets

from tests.hub.harness import Browser, Peer, hub_fixture, tokens_fixture  # noqa: F401 - fixtures

pytestmark = pytest.mark.hub

NOTEBOOK = "demo.py"
ACCESS = "access:servers!server=alice/"
WRITE = "custom:marimo-collab:write!server=alice/"
EXECUTE = "custom:marimo-collab:execute!server=alice/"


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def append_change(cell: dict, text: str) -> dict:
    """A `change` that appends `text` to a cell, in the spec form third-party clients send."""
    end = utf16_len(cell["code"])
    return {
        "type": "change",
        "document_id": cell["id"],
        "version": cell["version"],
        "updates": [
            {
                "clientID": f"hubtest-{time.monotonic_ns()}",
                "changes": [{"from": end, "to": end, "insert": text}],
            }
        ],
    }


async def open_peer(hub, token: str) -> tuple[Peer, dict]:
    peer = await Peer.connect(hub.ws_url("alice", NOTEBOOK), token)
    joined = await peer.join()
    assert joined["status"] == "ok", joined
    return peer, joined


async def cell_code(hub, token: str, cell_id: str) -> dict:
    """The cell as the server holds it now, seen by a fresh peer."""
    peer, joined = await open_peer(hub, token)
    await peer.close()
    return next(c for c in joined["notebook"]["cells"] if c["id"] == cell_id)


@pytest.fixture(scope="module")
def shared_with_bob(hub, tokens):
    """alice shares her server with bob: access plus our write scope (an editor)."""
    hub.share("alice", "bob", [ACCESS, WRITE], tokens["alice"])
    return tokens["bob"]


async def test_owner_is_runner(hub, tokens):
    peer, joined = await open_peer(hub, tokens["alice"])
    assert joined["self"]["role"] == "runner"
    assert joined["self"]["user"]["username"] == "alice"
    await peer.close()


async def test_shared_user_joins_with_own_token_and_edits(hub, shared_with_bob):
    peer, joined = await open_peer(hub, shared_with_bob)
    assert joined["self"]["role"] == "editor"
    assert joined["self"]["user"]["username"] == "bob"  # stamped by the server, from the hub
    cell = joined["notebook"]["cells"][-1]
    reply = await peer.request(append_change(cell, "  # bob was here"))
    assert reply["status"] == "ok", reply
    await peer.close()
    assert (await cell_code(hub, shared_with_bob, cell["id"]))["code"].endswith("# bob was here")


async def test_shared_editor_cannot_run(hub, shared_with_bob):
    peer, joined = await open_peer(hub, shared_with_bob)
    reply = await peer.request({"type": "run", "cell_ids": [joined["notebook"]["cells"][0]["id"]]})
    assert reply["status"] == "error" and reply["error"]["code"] == "forbidden"
    await peer.close()


async def test_read_only_role_sees_but_changes_nothing(hub, tokens):
    home_file = hub.home("alice") / NOTEBOOK
    on_disk = home_file.read_bytes()
    peer, joined = await open_peer(hub, tokens["carol"])
    assert joined["self"]["role"] == "viewer"
    cells = joined["notebook"]["cells"]
    assert cells and all("code" in c for c in cells)
    cell = cells[0]
    attempts = [
        append_change(cell, "  # carol"),
        {
            "type": "cells",
            "structure_version": joined["notebook"]["structure_version"],
            "ops": [{"op": "create", "after": None, "code": "x = 1", "name": "_", "config": {}}],
        },
        {"type": "save"},
        {"type": "run", "cell_ids": [cell["id"]]},
        {"type": "set_ui_value", "object_id": "nope", "value": 1},
        {"type": "restart_kernel"},
    ]
    for attempt in attempts:
        reply = await peer.request(attempt)
        assert reply["status"] == "error", (attempt["type"], reply)
        assert reply["error"]["code"] == "forbidden", (attempt["type"], reply)
    assert (await peer.request({"type": "heartbeat"}))["status"] == "ok"
    await peer.close()

    after = await cell_code(hub, tokens["alice"], cell["id"])
    assert after["code"] == cell["code"] and after["version"] == cell["version"]
    peer, rejoined = await open_peer(hub, tokens["alice"])
    await peer.close()
    assert rejoined["notebook"]["structure_version"] == joined["notebook"]["structure_version"]
    assert [c["id"] for c in rejoined["notebook"]["cells"]] == [c["id"] for c in cells]
    assert home_file.read_bytes() == on_disk


async def test_plain_share_is_read_only_under_the_scope_authorizer(hub, tokens):
    hub.share("alice", "erin", [ACCESS], tokens["alice"])
    peer, joined = await open_peer(hub, tokens["erin"])
    assert joined["self"]["role"] == "viewer"
    reply = await peer.request(append_change(joined["notebook"]["cells"][0], " # erin"))
    assert reply["error"]["code"] == "forbidden"
    await peer.close()


async def test_user_without_access_is_refused_at_the_upgrade(hub, tokens):
    with pytest.raises(websockets.InvalidStatus) as refused:
        await Peer.connect(hub.ws_url("alice", NOTEBOOK), tokens["dave"])
    assert refused.value.response.status_code == 403


async def test_unauthenticated_upgrade_is_refused(hub):
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(hub.ws_url("alice", NOTEBOOK), open_timeout=30)
    assert refused.value.response.status_code == 403


async def test_revoked_share_stops_edits_within_the_recheck_interval(hub, tokens):
    # Its own user and token: revoking must not disturb the other tests' shares.
    hub.create_users(["frank"])
    frank = hub.token_for("frank")
    hub.share("alice", "frank", [ACCESS, WRITE], tokens["alice"])
    peer, joined = await open_peer(hub, frank)
    assert joined["self"]["role"] == "editor"
    cell = joined["notebook"]["cells"][-1]
    first = await peer.request(append_change(cell, "  # frank 1"))
    assert first["status"] == "ok", first

    # Write revoked, access kept: a downgrade to viewer, announced, socket still open.
    hub.revoke("alice", "frank", tokens["alice"], scopes=[WRITE])
    await peer.next(
        lambda m: (
            m.get("type") == "presence"
            and m.get("peer", {}).get("peer_id") == joined["self"]["peer_id"]
            and m.get("peer", {}).get("role") == "viewer"
        ),
        timeout=hub.recheck_interval * 10 + 5,
    )
    current = await cell_code(hub, tokens["alice"], cell["id"])
    second = await peer.request(append_change(current, "  # frank 2"))
    assert second["status"] == "error" and second["error"]["code"] == "forbidden", second

    # Access revoked: the server closes the socket with 4403 and a reason.
    started = time.monotonic()
    hub.revoke("alice", "frank", tokens["alice"])
    code, reason = await peer.wait_closed(timeout=hub.recheck_interval * 10 + 5)
    assert code == 4403, (code, reason)
    assert reason
    assert time.monotonic() - started < hub.recheck_interval * 10 + 5
    assert "# frank 2" not in (await cell_code(hub, tokens["alice"], cell["id"]))["code"]


async def test_revoked_user_cannot_reconnect(hub, tokens):
    hub.create_users(["gina"])
    gina = hub.token_for("gina")
    hub.share("alice", "gina", [ACCESS], tokens["alice"])
    peer, _ = await open_peer(hub, gina)
    await peer.close()
    hub.revoke("alice", "gina", tokens["alice"])
    # The single-user server caches gina's hub model (HubAuth.cache_max_age); a new socket is
    # refused at once or closed by the first re-check.
    try:
        peer = await Peer.connect(hub.ws_url("alice", NOTEBOOK), gina)
    except websockets.InvalidStatus as refused:
        assert refused.value.response.status_code == 403
        return
    code, _ = await asyncio.wait_for(peer.wait_closed(), hub.recheck_interval * 10 + 5)
    assert code == 4403


# --- browsers: OAuth tokens carry only oauth_client_allowed_scopes the user holds -------------


async def browser_peer(hub, user: str) -> tuple[Peer, dict]:
    browser = Browser(hub)
    browser.login(user)
    browser.open_server("alice")
    peer = await Peer.connect_as_browser(hub.ws_url("alice", NOTEBOOK), browser, "alice")
    joined = await peer.join()
    assert joined["status"] == "ok", joined
    return peer, joined


async def test_owner_in_a_browser_is_runner(hub):
    peer, joined = await browser_peer(hub, "alice")
    assert joined["self"]["role"] == "runner"
    await peer.close()


async def test_read_only_role_reaches_the_browser(hub):
    peer, joined = await browser_peer(hub, "carol")
    assert joined["self"]["role"] == "viewer"
    reply = await peer.request(append_change(joined["notebook"]["cells"][0], " # carol"))
    assert reply["error"]["code"] == "forbidden"
    await peer.close()


async def test_share_levels_reach_api_tokens_but_not_browsers(hub, shared_with_bob):
    # JupyterHub 6.1: a share's scopes are in API tokens only; the browser's OAuth token has
    # access:servers alone, which HubScopeAuthorizer reads as `access_level` (docs/jupyterhub.md).
    peer, joined = await browser_peer(hub, "bob")
    assert joined["self"]["role"] == "viewer"
    await peer.close()
    peer, joined = await open_peer(hub, shared_with_bob)
    assert joined["self"]["role"] == "editor"
    await peer.close()


# --- hub groups ---------------------------------------------------------------------------------


async def test_hub_group_level_maps_to_editor(hub, tokens):
    # hank reaches alice's server through a role of his group; group_levels makes crew editors.
    peer, joined = await open_peer(hub, tokens["hank"])
    assert joined["self"]["role"] == "editor"
    await peer.close()


async def test_group_share_does_not_reach_api_tokens(hub, tokens):
    # JupyterHub 6.1 ignores group shares for tokens (docs/jupyterhub.md): no access at all.
    hub.create_users(["ivan"])
    hub.ok("POST", "/groups/shared-crew", {"users": ["ivan"]})
    hub.share_with_group("alice", "shared-crew", [ACCESS, WRITE], tokens["alice"])
    with pytest.raises(websockets.InvalidStatus) as refused:
        await Peer.connect(hub.ws_url("alice", NOTEBOOK), hub.token_for("ivan"))
    assert refused.value.response.status_code == 403
