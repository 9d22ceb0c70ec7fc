"""Per-notebook grants without a hub: the store, matching, the Authorizer's answers, the REST API.

The hub end to end is tests/test_hub_grants.py.
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
from jupyter_server.auth.identity import IdentityProvider
from tornado.httpclient import HTTPClientError

from marimo_collab_ext.auth.hub_authorizer import HubScopeAuthorizer
from marimo_collab_ext.auth.roles import PATH_ATTRIBUTE, Role
from marimo_collab_ext.grants.store import (
    Grant,
    GrantError,
    GrantStore,
    ShareLink,
    default_grants_file,
)

ACCESS = "access:servers!server=alice/"


def grant(path, role, user=None, group=None) -> Grant:
    data = {"path": path, "role": role, "user": user, "group": group}
    return Grant.from_json({k: v for k, v in data.items() if v is not None})


# ---- the store ---------------------------------------------------------------------------------


def test_grants_survive_a_new_store_and_are_private(tmp_path):
    path = tmp_path / "state" / "marimo-collab" / "grants.json"
    store = GrantStore(path)
    assert store.put(grant("course/week1.py", "viewer", user="gus")) is None
    previous = store.put(grant("course/week1.py", "editor", user="gus"))
    assert previous is not None and previous.role is Role.VIEWER
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]

    again = GrantStore(path)
    assert [g.to_json() for g in again.grants()] == [
        {"path": "course/week1.py", "user": "gus", "role": "editor"}]
    assert again.delete("course/week1.py", "user", "gus") is not None
    assert GrantStore(path).grants() == []


def test_folder_grants_reach_everything_inside_and_nothing_beside(tmp_path):
    store = GrantStore(tmp_path / "g.json")
    store.put(grant("course/", "viewer", user="gus"))
    assert store.role_for("gus", (), "course/week1.py") is Role.VIEWER
    assert store.role_for("gus", (), "course/sub/deep.py") is Role.VIEWER
    assert store.role_for("gus", (), "course") is Role.VIEWER  # the folder's listing
    assert store.role_for("gus", (), "course2/week1.py") is None
    assert store.role_for("gus", (), "other.py") is None
    assert store.role_for("gus", (), "") is None


def test_group_grants_and_the_highest_role_wins(tmp_path):
    store = GrantStore(tmp_path / "g.json")
    store.put(grant("lab", "viewer", user="lena"))
    store.put(grant("lab/b.py", "runner", group="lab"))
    store.put(grant("lab/b.py", "editor", user="lena"))
    assert store.role_for("lena", {"lab"}, "lab/b.py") is Role.RUNNER
    assert store.role_for("lena", (), "lab/b.py") is Role.EDITOR
    assert store.role_for("lena", (), "lab/c.py") is Role.VIEWER
    assert store.role_for("otto", {"lab"}, "lab/b.py") is Role.RUNNER
    assert store.role_for("otto", {"lab"}, "lab/c.py") is None
    assert store.has_grants("otto", {"lab"}) and not store.has_grants("otto", {"crew"})
    assert [g.path for g in store.grants("lab/b.py")] == ["lab", "lab/b.py", "lab/b.py"]


@pytest.mark.parametrize("bad", [
    {"path": "", "user": "gus", "role": "viewer"},
    {"path": "/", "user": "gus", "role": "viewer"},
    {"path": "../x.py", "user": "gus", "role": "viewer"},
    {"path": "a.py", "role": "viewer"},
    {"path": "a.py", "user": "gus", "group": "lab", "role": "viewer"},
    {"path": "a.py", "user": "gus", "role": "owner"},
    {"path": "a.py", "user": "", "role": "viewer"},
    ["a.py"],
])
def test_malformed_grants_are_refused(bad):
    with pytest.raises(GrantError):
        Grant.from_json(bad)


def test_another_writer_is_picked_up_and_the_audit_log_persists(tmp_path):
    path = tmp_path / "g.json"
    store = GrantStore(path, audit_size=3)
    other = GrantStore(path)
    other.put(grant("a.py", "runner", user="gus"))
    assert store.role_for("gus", (), "a.py") is Role.RUNNER
    for n in range(8):
        store.record_join("a.py" if n % 2 else "b/c.py", f"u{n}", "viewer")
    assert [j.username for j in store.joins()] == ["u5", "u6", "u7"]
    assert [j.username for j in store.joins("b")] == ["u6"]
    reloaded = GrantStore(path, audit_size=3)
    assert [j.username for j in reloaded.joins()] == ["u5", "u6", "u7"]
    assert reloaded.joins()[0].to_json()["at"].endswith("Z")


def test_share_links_persist_until_they_expire(tmp_path):
    path = tmp_path / "g.json"
    store = GrantStore(path)
    live = ShareLink("abc", "talk/slides.py", Role.EDITOR, time.time() + 60, "sc_1")
    store.add_link(live)
    store.add_link(ShareLink("old", "talk/slides.py", Role.VIEWER, time.time() - 1, "sc_2"))
    again = GrantStore(path)
    assert [k.id for k in again.links()] == ["abc"] and again.link("old") is None
    assert again.link("abc") == live and again.links("talk") == [live]
    assert again.delete_link("abc") == live and GrantStore(path).links() == []


def test_an_unreadable_grants_file_fails_closed(tmp_path, authorizer):
    path = tmp_path / "g.json"
    path.write_text("{not json")
    store = GrantStore(path)  # the server still starts
    with pytest.raises(GrantError):
        store.role_for("gus", (), "a.py")
    with pytest.raises(GrantError):  # a guest's request fails, never falls back to access_level
        authorizer.is_authorized(rest(store, "a.py"), hub_user("gus"), "read", "contents")
    assert authorizer.is_authorized(rest(store, "a.py"), hub_user("alice"), "read", "contents")
    path.write_text('{"grants": [{"path": "a.py", "user": "gus", "role": "viewer"}]}')
    assert store.role_for("gus", (), "a.py") is Role.VIEWER


def test_state_folder_inside_the_served_folder_is_recognised(tmp_path):
    store = GrantStore(tmp_path / ".local/state/marimo-collab/grants.json",
                       served_root=str(tmp_path))
    assert store.is_state_path(".local/state/marimo-collab/grants.json")
    assert store.is_state_path(".local/state/marimo-collab")
    assert not store.is_state_path(".local/state") and not store.is_state_path("a.py")
    outside = GrantStore(tmp_path / "state/g.json", served_root=str(tmp_path / "home"))
    assert not outside.is_state_path("state/g.json")


def test_default_file_is_in_the_state_dir(monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", "/x/state")
    assert default_grants_file() == "/x/state/marimo-collab/grants.json"
    assert default_grants_file("lab2") == "/x/state/marimo-collab/grants-lab2.json"


# ---- the Authorizer's answers from grants --------------------------------------------------------


class HubLikeProvider(IdentityProvider):
    """Stands for JupyterHubIdentityProvider: the authorizer reads only its access scopes."""

    hub_auth = SimpleNamespace(access_scopes={ACCESS})


def hub_user(name, scopes=(ACCESS,), groups=()):
    return SimpleNamespace(username=name, hub_user={
        "name": name, "kind": "user", "scopes": list(scopes), "groups": list(groups)})


def rest(store, path=None, method="GET", body=b"", files=False):
    """What jupyter_server hands the Authorizer for a contents (or files) request."""
    return SimpleNamespace(
        settings={"marimo_collab": SimpleNamespace(grant_store=store)},
        path_kwargs={} if files or path is None else {"path": path},
        path_args=[path] if files else [],
        request=SimpleNamespace(method=method, body=body),
    )


def socket(store, path):
    handler = rest(store)
    setattr(handler, PATH_ATTRIBUTE, path)
    return handler


@pytest.fixture
def authorizer(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.setenv("JUPYTERHUB_SERVER_NAME", "")
    return HubScopeAuthorizer(identity_provider=HubLikeProvider())


def test_a_grantee_is_confined_to_the_granted_notebook(authorizer, tmp_path):
    store = GrantStore(tmp_path / "g.json")
    store.put(grant("proj/a.py", "editor", user="pia"))
    pia = hub_user("pia")
    ok = authorizer.is_authorized
    assert ok(rest(store, "proj/a.py"), pia, "read", "contents")
    assert ok(rest(store, "/proj/a.py", files=True), pia, "read", "contents")
    assert ok(rest(store, "proj/a.py", "PUT", b'{"type": "file"}'), pia, "write", "contents")
    assert ok(socket(store, "proj/a.py"), pia, "write", "contents")
    assert not ok(socket(store, "proj/a.py"), pia, "execute", "kernels")  # an editor
    # Beside the grant: other files, listings, copies, renames, deletes, everything else.
    assert not ok(rest(store, "proj/b.py"), pia, "read", "contents")
    assert not ok(rest(store, "proj"), pia, "read", "contents")
    assert not ok(rest(store, ""), pia, "read", "contents")
    assert not ok(rest(store, "other.py", files=True), pia, "read", "contents")
    assert not ok(rest(store, "proj/a.py", "PUT", b'{"copy_from": "secret.py"}'), pia, "write",
                  "contents")
    assert not ok(rest(store, "proj/a.py", "PATCH", b'{"path": "x.py"}'), pia, "write",
                  "contents")
    assert not ok(rest(store, "proj/a.py", "DELETE"), pia, "write", "contents")
    for resource in ("kernels", "sessions", "terminals", "kernelspecs", "settings", "config"):
        for action in ("read", "write", "execute"):
            assert not ok(rest(store), pia, action, resource), (action, resource)
    assert not ok(socket(store, "proj/b.py"), pia, "read", "contents")


def test_runner_grant_runs_through_the_socket_only(authorizer, tmp_path):
    store = GrantStore(tmp_path / "g.json")
    store.put(grant("lab/b.py", "runner", group="lab"))
    lena = hub_user("lena", groups=["lab"])
    assert authorizer.is_authorized(socket(store, "lab/b.py"), lena, "execute", "kernels")
    assert not authorizer.is_authorized(rest(store), lena, "execute", "kernels")
    assert not authorizer.is_authorized(rest(store, "lab/b.py", "POST"), lena, "write",
                                        "contents")


def test_grants_add_to_hub_levels_and_leave_others_alone(authorizer, tmp_path):
    store = GrantStore(tmp_path / "g.json")
    store.put(grant("proj/a.py", "runner", user="carol"))
    # carol reads everything by a hub scope, and runs proj/a.py by a grant.
    carol = hub_user("carol", [ACCESS, "custom:marimo-collab:read!server=alice/"])
    assert authorizer.is_authorized(rest(store, "other.py"), carol, "read", "contents")
    assert authorizer.is_authorized(socket(store, "proj/a.py"), carol, "execute", "kernels")
    assert not authorizer.is_authorized(socket(store, "other.py"), carol, "write", "contents")
    # erin has no grant: access_level as before.
    assert authorizer.is_authorized(rest(store, "other.py"), hub_user("erin"), "read", "contents")
    # Without access to the server, a grant gives nothing.
    store.put(grant("proj/a.py", "runner", user="dave"))
    dave = hub_user("dave", scopes=())
    assert not authorizer.is_authorized(socket(store, "proj/a.py"), dave, "read", "contents")


def test_the_grants_file_is_refused_to_everyone_but_the_owner(authorizer, tmp_path):
    store = GrantStore(tmp_path / ".local/state/marimo-collab/grants.json",
                       served_root=str(tmp_path))
    path = ".local/state/marimo-collab/grants.json"
    erin = hub_user("erin", [ACCESS, "custom:marimo-collab:write!server=alice/"])
    assert not authorizer.is_authorized(rest(store, path), erin, "read", "contents")
    assert authorizer.is_authorized(rest(store, path), hub_user("alice"), "read", "contents")


# ---- REST on a plain server (its token's holder is the owner) -----------------------------------


SCHEMA = json.loads((Path(__file__).parents[1] / "docs" / "protocol.schema.json").read_text())


def check_schema(body: dict) -> dict:
    """`body` is one of the REST bodies docs/protocol.schema.json describes."""
    jsonschema.validate(body, {**SCHEMA, "oneOf": [{"$ref": "#/$defs/grants_rest"}]})
    return body


async def test_owner_manages_grants_over_rest(jp_fetch, jp_serverapp, tmp_path):
    async def call(method, body=None, **params):
        kwargs = {"method": method, "params": params}
        if body is not None:
            kwargs["body"] = json.dumps(body)
            kwargs["allow_nonstandard_methods"] = True
        reply = await jp_fetch("api", "marimo-collab", "grants", **kwargs)
        return reply.code, check_schema(json.loads(reply.body))

    code, created = await call("PUT", {"path": "proj/a.py", "user": "pia", "role": "editor"})
    assert code == 201 and created["grant"] == {"path": "proj/a.py", "user": "pia",
                                                "role": "editor"}
    code, changed = await call("PUT", {"path": "proj/a.py", "user": "pia", "role": "viewer"})
    assert code == 200 and changed["previous"]["role"] == "editor"
    await call("PUT", {"path": "lab", "group": "lab", "role": "runner"})
    assert (await call("GET"))[1]["grants"] == [
        {"path": "lab", "group": "lab", "role": "runner"},
        {"path": "proj/a.py", "user": "pia", "role": "viewer"}]
    assert (await call("GET", path="proj"))[1]["grants"] == [
        {"path": "proj/a.py", "user": "pia", "role": "viewer"}]
    code, removed = await call("DELETE", {"path": "proj/a.py", "user": "pia"})
    assert code == 200 and removed["removed"]["user"] == "pia"

    store_file = jp_serverapp.web_app.settings["marimo_collab"].grant_store.path
    assert json.loads(store_file.read_text())["grants"] == [
        {"path": "lab", "group": "lab", "role": "runner"}]
    for method, body in (("PUT", {"path": "", "user": "x", "role": "viewer"}),
                         ("PUT", {"path": "a.py", "user": "x", "role": "admin"}),
                         ("DELETE", {"path": "a.py", "user": "nobody"})):
        with pytest.raises(HTTPClientError) as refused:
            await call(method, body)
        assert refused.value.code == (404 if method == "DELETE" else 400)


async def test_joins_are_in_the_audit_log(jp_fetch, connect):
    client = await connect()
    reply = await jp_fetch("api", "marimo-collab", "grants", "audit", params={"path": "demo.py"})
    joins = check_schema(json.loads(reply.body))["joins"]
    assert joins and joins[-1]["path"] == "demo.py" and joins[-1]["role"] == "runner"
    assert joins[-1]["username"] and joins[-1]["at"].endswith("Z")
    await client.close()


@pytest.mark.people  # tests/identities.py: tokens name people; MarimoCollab.owner is rita
@pytest.mark.parametrize("collab_settings", [{"owner": "rita"}])
async def test_only_the_owner_may_see_or_change_grants(jp_fetch, collab_settings):
    for method, body, what in (("GET", None, ()), ("PUT", {"path": "a.py", "user": "eddie",
                                                             "role": "runner"}, ()),
                               ("DELETE", {"path": "a.py", "user": "eddie"}, ()),
                               ("GET", None, ("audit",))):
        kwargs = {"method": method, "headers": {"Authorization": "token eddie-token"}}
        if body is not None:
            kwargs.update(body=json.dumps(body), allow_nonstandard_methods=True)
        with pytest.raises(HTTPClientError) as refused:
            await jp_fetch("api", "marimo-collab", "grants", *what, **kwargs)
        assert refused.value.code == 403, (method, what)
    reply = await jp_fetch("api", "marimo-collab", "grants",
                           headers={"Authorization": "token rita-token"})
    assert json.loads(reply.body) == {"grants": []}
