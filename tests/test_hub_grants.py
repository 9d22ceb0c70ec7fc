"""Per-notebook grants under a real JupyterHub 6.1: guests confined to what alice granted them.

alice grants viewer on course/week1.py to gus, editor on proj/a.py to pia, runner on lab/b.py to
the hub group "lab" (lena). Hub config: tests/hub/jupyterhub_config.py; docs/jupyterhub.md.
"""

from __future__ import annotations

import json
import shutil
import stat
import time
import urllib.error
import urllib.request
from urllib.parse import quote

import pytest
import websockets

from tests.hub.harness import EXAMPLE, Browser, Peer, _hidden_inputs, hub_fixture, tokens_fixture  # noqa: F401 - fixtures
from tests.test_grants import check_schema
from tests.test_hub import ACCESS, append_change

pytestmark = pytest.mark.hub

NOTEBOOKS = ("course/week1.py", "proj/a.py", "lab/b.py", "secret.py")
GUESTS = {  # user -> (notebook, role)
    "gus": ("course/week1.py", "viewer"),
    "pia": ("proj/a.py", "editor"),
    "lena": ("lab/b.py", "runner"),
}


def server_call(hub, method: str, path: str, token: str, body: object = None,
                owner: str = "alice") -> tuple[int, object]:
    """One request to a single-user server through the proxy: (status, JSON or text)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{hub.url}/user/{owner}/{path}", data=data, method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw.strip() else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def grants_api(hub, method: str, token: str, body: object = None, query: str = ""):
    return server_call(hub, method, f"api/marimo-collab/grants{query}", token, body)


@pytest.fixture(scope="module")
def guests(hub, tokens):
    """The notebooks, the guests (gus and pia reach alice's server by a plain share, lena by her
    group's hub role), and alice's grants. Returns each guest's API token."""
    home = hub.home("alice")
    for notebook in NOTEBOOKS:
        (home / notebook).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLE, home / notebook)
    hub.create_users(["gus", "pia", "lena"])
    for user in ("gus", "pia"):
        hub.share("alice", user, [ACCESS], tokens["alice"])
    assert grants_api(hub, "PUT", tokens["alice"],
                      {"path": "course/week1.py", "user": "gus", "role": "viewer"})[0] == 201
    assert grants_api(hub, "PUT", tokens["alice"],
                      {"path": "proj/a.py", "user": "pia", "role": "editor"})[0] == 201
    assert grants_api(hub, "PUT", tokens["alice"],
                      {"path": "lab/b.py", "group": "lab", "role": "runner"})[0] == 201
    return {user: hub.token_for(user) for user in GUESTS}


async def join(hub, token: str, notebook: str, owner: str = "alice") -> tuple[Peer, dict]:
    peer = await Peer.connect(hub.ws_url(owner, notebook), token)
    joined = await peer.join()
    assert joined["status"] == "ok", joined
    return peer, joined


async def test_each_guest_joins_their_notebook_at_their_role(hub, guests):
    for user, (notebook, role) in GUESTS.items():
        peer, joined = await join(hub, guests[user], notebook)
        assert joined["self"]["role"] == role, user
        assert joined["self"]["user"]["username"] == user
        cell = joined["notebook"]["cells"][-1]
        reply = await peer.request(append_change(cell, f"  # {user}"))
        if role == "viewer":
            assert reply["error"]["code"] == "forbidden", reply
        else:
            assert reply["status"] == "ok", reply
        await peer.close()


async def test_our_socket_refuses_every_other_notebook(hub, guests):
    for user, (own, _) in GUESTS.items():
        for notebook in NOTEBOOKS + ("demo.py",):
            if notebook == own:
                continue
            with pytest.raises(websockets.InvalidStatus) as refused:
                await Peer.connect(hub.ws_url("alice", notebook), guests[user])
            assert refused.value.response.status_code == 403, (user, notebook)


async def test_a_guest_browser_joins_at_the_granted_role(hub, guests):
    # gus's share reaches his browser's OAuth token as access:servers; the grant does the rest.
    browser = Browser(hub)
    browser.login("gus")
    browser.open_server("alice")
    peer = await Peer.connect_as_browser(hub.ws_url("alice", "course/week1.py"), browser, "alice")
    joined = await peer.join()
    assert joined["self"]["role"] == "viewer" and joined["self"]["user"]["username"] == "gus"
    await peer.close()
    with pytest.raises(websockets.InvalidStatus) as refused:
        await Peer.connect_as_browser(hub.ws_url("alice", "proj/a.py"), browser, "alice")
    assert refused.value.response.status_code == 403


async def test_a_group_grant_reaches_the_browser_and_its_runner_runs(hub, guests):
    # lena's groups come with her browser's OAuth token too; her group's runner grant runs cells.
    browser = Browser(hub)
    browser.login("lena")
    browser.open_server("alice")
    peer = await Peer.connect_as_browser(hub.ws_url("alice", "lab/b.py"), browser, "alice")
    joined = await peer.join()
    assert joined["self"]["role"] == "runner", joined["self"]
    reply = await peer.request({"type": "run", "cell_ids": [joined["notebook"]["cells"][0]["id"]]},
                               timeout=120)
    assert reply["status"] == "ok", reply
    await peer.close()


SETTINGS = "lab/api/settings/@jupyterlab/apputils-extension:themes"
WORKSPACE = "lab/api/workspaces/grants-test"


def test_guests_are_confined_over_rest(hub, tokens, guests):
    owner = tokens["alice"]
    settings_body = {"raw": "{}"}
    workspace_body = {"data": {}, "metadata": {"id": "grants-test"}}
    # The owner may do all of it: the refusals below are the grants' doing, not the request's.
    assert server_call(hub, "GET", "api/contents/", owner)[0] == 200
    assert server_call(hub, "PUT", SETTINGS, owner, settings_body)[0] == 204
    assert server_call(hub, "PUT", WORKSPACE, owner, workspace_body)[0] == 204
    for user, (own, role) in GUESTS.items():
        token = guests[user]
        folder = own.split("/")[0]
        status, model = server_call(hub, "GET", f"api/contents/{own}", token)
        assert status == 200 and model["path"] == own, (user, status)
        assert server_call(hub, "GET", f"files/{quote(own)}", token)[0] == 200, user
        save = {"type": "file", "format": "text", "content": model["content"]}
        status, _ = server_call(hub, "PUT", f"api/contents/{own}", token, save)
        assert status == (403 if role == "viewer" else 200), (user, status)
        status, _ = server_call(hub, "POST", f"api/contents/{own}/checkpoints", token, {})
        assert status == (403 if role == "viewer" else 201), (user, status)
        refused = {
            "contents of another file": ("GET", "api/contents/secret.py", None),
            "contents beside the grant": ("GET", f"api/contents/{folder}/../demo.py", None),
            "listing of the root": ("GET", "api/contents/", None),
            "listing of the grant's folder": ("GET", f"api/contents/{folder}", None),
            "files API": ("GET", "files/secret.py", None),
            "copy into the grant": ("POST", f"api/contents/{folder}",
                                    {"copy_from": "secret.py"}),
            "rename the grant": ("PATCH", f"api/contents/{own}", {"path": "moved.py"}),
            "delete the grant": ("DELETE", f"api/contents/{own}", None),
            "terminals": ("GET", "api/terminals", None),
            "new terminal": ("POST", "api/terminals", {}),
            "kernels": ("GET", "api/kernels", None),
            "new kernel": ("POST", "api/kernels", {}),
            "sessions": ("GET", "api/sessions", None),
            "settings write": ("PUT", SETTINGS, settings_body),
            "workspace write": ("PUT", WORKSPACE, workspace_body),
            "grants": ("GET", "api/marimo-collab/grants", None),
            "audit": ("GET", "api/marimo-collab/grants/audit", None),
        }
        for what, (method, path, body) in refused.items():
            status, _ = server_call(hub, method, path, token, body)
            assert status in (403, 404) if "beside" in what else status == 403, (user, what,
                                                                                 status)
    assert (hub.home("alice") / "proj/a.py").exists()


def test_jupyterlab_settings_writes_need_execute_for_everyone_but_the_owner(hub, tokens):
    # jupyterlab_server checks only the login; marimo_collab_ext.grants.lab_guard asks the
    # Authorizer. carol (viewer by a hub role) and hank (editor by group) may read, not write.
    for user in ("carol", "hank"):
        assert server_call(hub, "GET", SETTINGS, tokens[user])[0] == 200, user
        assert server_call(hub, "PUT", SETTINGS, tokens[user], {"raw": "{}"})[0] == 403, user
        assert server_call(hub, "PUT", WORKSPACE, tokens[user],
                           {"data": {}, "metadata": {"id": "grants-test"}})[0] == 403, user


async def test_audit_shows_who_joined(hub, tokens, guests):
    peer, _ = await join(hub, guests["gus"], "course/week1.py")
    await peer.close()
    status, reply = grants_api(hub, "GET", tokens["alice"], query="/audit?path=course")
    assert status == 200
    joins = reply["joins"]
    assert joins and {j["path"] for j in joins} == {"course/week1.py"}
    assert joins[-1]["username"] == "gus" and joins[-1]["role"] == "viewer"
    assert joins[-1]["at"].endswith("Z")


async def test_changes_reach_an_open_socket_within_10_seconds(hub, tokens):
    # ruth reaches alice's server only through the share the grant makes (see below).
    hub.create_users(["ruth"])
    ruth = hub.token_for("ruth")
    grant = {"path": "proj", "user": "ruth", "role": "editor"}
    assert grants_api(hub, "PUT", tokens["alice"], grant)[0] == 201
    peer, joined = await join(hub, ruth, "proj/a.py")
    assert joined["self"]["role"] == "editor"

    started = time.monotonic()
    assert grants_api(hub, "PUT", tokens["alice"], {**grant, "role": "viewer"})[0] == 200
    await peer.next(
        lambda m: m.get("type") == "presence"
        and m.get("peer", {}).get("peer_id") == joined["self"]["peer_id"]
        and m.get("peer", {}).get("role") == "viewer", timeout=10)
    assert time.monotonic() - started < 10

    started = time.monotonic()
    assert grants_api(hub, "DELETE", tokens["alice"], {"path": "proj", "user": "ruth"})[0] == 200
    code, reason = await peer.wait_closed(timeout=10)
    assert code == 4403 and reason, (code, reason)
    assert time.monotonic() - started < 10
    with pytest.raises(websockets.InvalidStatus) as refused:
        await Peer.connect(hub.ws_url("alice", "proj/a.py"), ruth)
    assert refused.value.response.status_code == 403


async def test_revoking_a_grant_of_someone_shared_by_hand_closes_other_notebooks(hub, tokens):
    # A hand-made share without grants reads as HubScopeAuthorizer.access_level (read here);
    # with a grant its holder is confined, and their sockets elsewhere close within seconds.
    hub.create_users(["sami"])
    sami = hub.token_for("sami")
    hub.share("alice", "sami", [ACCESS], tokens["alice"])
    peer, joined = await join(hub, sami, "secret.py")
    assert joined["self"]["role"] == "viewer"
    started = time.monotonic()
    grant = {"path": "proj/a.py", "user": "sami", "role": "editor"}
    assert grants_api(hub, "PUT", tokens["alice"], grant)[1]["hub_share"] == {"status": "exists"}
    code, reason = await peer.wait_closed(timeout=10)
    assert code == 4403 and reason, (code, reason)
    assert time.monotonic() - started < 10
    grants_api(hub, "DELETE", tokens["alice"], grant)


def shared_with(hub, user: str) -> list[str]:
    """The scopes alice's server is shared with `user` by (the hub's own record)."""
    for share in hub.ok("GET", "/shares/alice/")["items"]:
        if share["kind"] == "user" and share["user"]["name"] == user:
            return share["scopes"]
    return []


async def test_a_grant_lets_the_guest_in_through_a_hub_share_and_revoking_removes_it(hub,
                                                                                   tokens):
    hub.create_users(["vic"])
    vic = hub.token_for("vic")
    # Not shared yet. (Not probed with a request: the server would cache vic's refusal for
    # HubAuth.cache_max_age.)
    assert shared_with(hub, "vic") == []
    grant = {"path": "course/week1.py", "user": "vic", "role": "viewer"}
    status, reply = grants_api(hub, "PUT", tokens["alice"], grant)
    assert status == 201 and reply["hub_share"] == {"status": "created"}, reply
    assert shared_with(hub, "vic") == [ACCESS]
    peer, joined = await join(hub, vic, "course/week1.py")
    assert joined["self"]["role"] == "viewer"
    await peer.close()
    assert server_call(hub, "GET", "api/contents/secret.py", vic)[0] == 403

    status, reply = grants_api(hub, "DELETE", tokens["alice"],
                               {"path": "course/week1.py", "user": "vic"})
    assert status == 200 and reply["hub_share"] == {"status": "removed"}, reply
    assert shared_with(hub, "vic") == []
    # The server may answer from its few-seconds-old copy of vic's hub model: refused at once,
    # or closed by the first re-check (as in test_hub.py's test_revoked_user_cannot_reconnect).
    try:
        peer = await Peer.connect(hub.ws_url("alice", "course/week1.py"), vic)
    except websockets.InvalidStatus as refused:
        assert refused.value.response.status_code == 403
    else:
        code, _ = await peer.wait_closed(timeout=10)
        assert code == 4403


async def test_a_share_made_by_hand_is_left_alone(hub, tokens, guests):
    # gus was shared with by alice herself (the `guests` fixture): no second share, and revoking
    # gus's grants leaves alice's share in place.
    grant = {"path": "course/notes.py", "user": "gus", "role": "viewer"}
    status, reply = grants_api(hub, "PUT", tokens["alice"], grant)
    assert reply["hub_share"] == {"status": "exists"}, reply
    grants_api(hub, "DELETE", tokens["alice"], grant)
    assert shared_with(hub, "gus") == [ACCESS]


def accept_share(browser: Browser, url: str) -> str:
    """Accept a hub share code in the browser, through the server's OAuth; the final URL."""
    _, page = browser.get(url)
    url, page = browser.post(browser.hub.url + url, _hidden_inputs(page, "_xsrf")
                             + _hidden_inputs(page, "code"))
    if "/hub/api/oauth2/authorize" in url:
        url, page = browser.post(url, _hidden_inputs(page, "_xsrf")
                                 + _hidden_inputs(page, "scopes"))
    return url


async def test_a_share_link_gives_whoever_accepts_it_that_notebook_at_its_role(hub, tokens):
    # olga's server reads a plain share as nothing (access_level "none",
    # tests/hub/singleuser/jupyter_server_config.py), as share links require.
    hub.create_users(["olga", "wes", "xia"])
    home = hub.home("olga")
    (home / "talk").mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE, home / "talk" / "slides.py")
    shutil.copy(EXAMPLE, home / "other.py")
    hub.start_server("olga")
    olga = hub.token_for("olga")
    link_body = {"path": "talk/slides.py", "role": "editor", "expires_in": 3600}
    status, reply = server_call(hub, "POST", "api/marimo-collab/grants/links", tokens["alice"],
                                link_body)
    assert status == 409, (status, reply)  # alice's plain shares read everything: no links
    status, reply = server_call(hub, "POST", "api/marimo-collab/grants/links", olga, link_body,
                                owner="olga")
    assert status == 201, (status, reply)
    link, url = check_schema(reply)["link"], reply["url"]
    assert url.startswith("/hub/accept-share?code=") and link["role"] == "editor"

    # wes accepts in a browser and lands in JupyterLab on that notebook, an editor of it alone.
    browser = Browser(hub)
    browser.login("wes")
    final = accept_share(browser, url)
    assert "/user/olga/lab/workspaces/wes/tree/talk/slides.py" in final, final
    grants = server_call(hub, "GET", "api/marimo-collab/grants", olga, owner="olga")[1]["grants"]
    assert {"path": "talk/slides.py", "user": "wes", "role": "editor"} in grants
    wes = hub.token_for("wes")
    peer, joined = await join(hub, wes, "talk/slides.py", owner="olga")
    assert joined["self"]["role"] == "editor"
    await peer.close()
    with pytest.raises(websockets.InvalidStatus):
        await Peer.connect(hub.ws_url("olga", "other.py"), wes)
    assert server_call(hub, "GET", "api/contents/", wes, owner="olga")[0] == 403

    # xia accepts the hub's code but skips the link's own step: she reaches olga's server,
    # and may open nothing there.
    browser = Browser(hub)
    browser.login("xia")
    final = accept_share(browser, url.split("&next=")[0])
    assert "/user/olga/" in final, final
    xia = hub.token_for("xia")
    with pytest.raises(websockets.InvalidStatus) as refused:
        await Peer.connect(hub.ws_url("olga", "talk/slides.py"), xia)
    assert refused.value.response.status_code == 403
    assert server_call(hub, "GET", "api/contents/other.py", xia, owner="olga")[0] == 403

    # Withdrawn: the link's step answers 404, the hub's code is gone.
    status, reply = server_call(hub, "DELETE", "api/marimo-collab/grants/links", olga,
                                {"id": link["id"]}, owner="olga")
    assert status == 200 and check_schema(reply)["removed"] == link
    assert server_call(hub, "GET", "api/marimo-collab/grants/links", olga,
                       owner="olga")[1] == {"links": []}
    claim = f"/user/olga/marimo-collab/claim/{link['id']}"
    with pytest.raises(urllib.error.HTTPError) as gone:
        browser.get(claim)
    assert gone.value.code == 404
    assert hub.ok("GET", "/share-codes/olga/")["items"] == []


async def test_grants_survive_a_restart_of_the_server(hub, tokens, guests):
    # Last in this file: it restarts alice's server.
    before = grants_api(hub, "GET", tokens["alice"])[1]["grants"]
    assert {"path": "lab/b.py", "group": "lab", "role": "runner"} in before
    grants_file = hub.home("alice") / ".local/state/marimo-collab/grants.json"
    assert stat.S_IMODE(grants_file.stat().st_mode) == 0o600
    assert server_call(hub, "GET", "api/contents/.local/state/marimo-collab/grants.json",
                       guests["pia"])[0] == 403

    status, _ = hub.api("DELETE", "/users/alice/server")
    assert status in (202, 204), status
    hub._wait(lambda: not hub.ok("GET", "/users/alice").get("servers"), 60,
              "alice's server to stop")
    hub.start_server("alice")

    assert grants_api(hub, "GET", tokens["alice"])[1]["grants"] == before
    for user, (notebook, role) in GUESTS.items():
        peer, joined = await join(hub, guests[user], notebook)
        assert joined["self"]["role"] == role, user
        await peer.close()
    status, reply = grants_api(hub, "GET", tokens["alice"], query="/audit")
    assert any(j["username"] == "gus" for j in reply["joins"])  # the log survived too


async def test_a_guest_opens_the_granted_notebook_in_jupyterlab(hub, guests):
    # The documented multiplayer URL, on alice's server, in a real browser logged in as pia:
    # JupyterLab loads (its file browser empty, kernels, sessions, terminals and workspace saves
    # refused), and the granted notebook opens, connects and takes pia's typing.
    from tests.browser_harness import FACTORY, chromium, screenshot

    target = (f"/user/alice/lab/workspaces/pia/tree/{quote('proj/a.py')}"
              f"?factory={quote(FACTORY)}")
    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 1300, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on("response", lambda r: errors.append(f"{r.status} {r.request.method} {r.url}")
                if r.status >= 400 else None)
        await page.goto(f"{hub.url}/hub/login?next={quote(target)}")
        await page.fill("input[name=username]", "pia")
        await page.fill("input[name=password]", hub.password)
        await page.click("input[type=submit], button[type=submit]")
        await page.wait_for_load_state()
        if "/oauth2/authorize" in page.url:
            await page.click("input[type=submit], button[type=submit]")
        try:
            await page.wait_for_selector("[data-cell-id] .cm-editor", state="attached",
                                         timeout=90_000)
            await page.wait_for_selector('[data-connection-status="connected"]', timeout=60_000)
        finally:
            await screenshot(page, "hub-guest-pia")
        # What JupyterLab tried and was refused: nothing of the granted notebook's own.
        assert not [e for e in errors if "proj/a.py" in e or "marimo-collab" in e], errors
        cell = page.locator("[data-cell-id] .cm-content").first
        await cell.click()
        await page.keyboard.type("# typed by pia ")
        await page.wait_for_timeout(2000)
    peer, joined = await join(hub, guests["pia"], "proj/a.py")
    await peer.close()
    assert any("# typed by pia" in c["code"] for c in joined["notebook"]["cells"])
