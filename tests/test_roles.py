"""Roles from Jupyter's Authorizer, narrowed by configuration, checked per message and re-checked.

Pure parts with stand-in handlers; the end-to-end socket tests live with the handler's tests.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import IdentityProvider, User
from jupyterhub.services.auth import check_scopes

from marimo_collab_ext.auth import identity as identity_mod
from marimo_collab_ext.auth.hub_authorizer import HubScopeAuthorizer, Level
from marimo_collab_ext.auth.identity import (
    PALETTE,
    IdentityUnavailable,
    color_for,
    identity_of,
    refresh_identity,
)
from marimo_collab_ext.auth.recheck import CLOSE_FORBIDDEN, RoleWatcher
from marimo_collab_ext.auth.roles import (
    ACTIONS,
    PATH_ATTRIBUTE,
    Role,
    RolePolicy,
    authorize_message,
    required_role,
    resolve_role,
)
from marimo_collab_ext.room.errors import BadRequest, Forbidden
from tests.hub.harness import Peer


class RightsAuthorizer(Authorizer):
    """Grants each username a fixed set of (action, resource) pairs; counts the questions."""

    def __init__(self, rights: dict[str, set[tuple[str, str]]], *, asynchronous: bool = False):
        super().__init__()
        self.rights = rights
        self.asynchronous = asynchronous
        self.calls: list[tuple[str, str, str, str | None]] = []

    def is_authorized(self, handler, user, action, resource):
        self.calls.append((user.username, action, resource, getattr(handler, PATH_ATTRIBUTE, None)))
        answer = (action, resource) in self.rights.get(user.username, set())
        if self.asynchronous:

            async def later():
                await asyncio.sleep(0)
                return answer

            return later()
        return answer


class CustomIdentityProvider(IdentityProvider):
    """Stands for a multi-user provider: nobody is the owner unless configured."""


READ = {("read", "contents")}
WRITE = READ | {("write", "contents")}
EXECUTE = WRITE | {("execute", "kernels")}

ALICE = User("alice")
BOB = User("bob")
CAROL = User("carol")
DAVE = User("dave")


def handler_with(authorizer, provider=None):
    return SimpleNamespace(
        authorizer=authorizer, identity_provider=provider or CustomIdentityProvider()
    )


@pytest.fixture(autouse=True)
def no_hub_env(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    monkeypatch.delenv("JUPYTERHUB_SERVER_NAME", raising=False)
    identity_mod._fresh.clear()


@pytest.fixture(params=[False, True], ids=["sync-authorizer", "async-authorizer"])
def authorizer(request):
    return RightsAuthorizer(
        {"alice": EXECUTE, "bob": WRITE, "carol": READ, "dave": set()},
        asynchronous=request.param,
    )


def test_every_protocol_message_type_has_a_role():
    assert {t for t, r in ACTIONS.items() if r is Role.VIEWER} == {
        "join",
        "cursor",
        "heartbeat",
        "pull",
        "history",
        "cell_history",
        "blame",
    }
    assert {t for t, r in ACTIONS.items() if r is Role.EDITOR} == {
        "change", "cells", "save", "suggest", "accept_suggestion", "reject_suggestion",
        "restore_notebook"}
    assert {t for t, r in ACTIONS.items() if r is Role.RUNNER} == {
        "run",
        "set_ui_value",
        "interrupt",
        "restart_kernel",
        "stdin",
        "set_model_value",
        "function_call",  # read-only functions need only a viewer: tests/test_widget_calls.py
    }
    assert required_role("no_such_type") is None


def test_role_wire_names_round_trip():
    assert [r.wire_name for r in Role] == ["viewer", "editor", "runner"]
    assert all(Role.parse(r.wire_name) is r for r in Role)
    assert Role.VIEWER < Role.EDITOR < Role.RUNNER
    with pytest.raises(ValueError):
        Role.parse("admin")


async def test_roles_follow_the_authorizer(authorizer):
    handler = handler_with(authorizer)
    policy = RolePolicy()
    assert await resolve_role(handler, ALICE, "nb.py", policy) is Role.RUNNER
    assert await resolve_role(handler, BOB, "nb.py", policy) is Role.EDITOR
    assert await resolve_role(handler, CAROL, "nb.py", policy) is Role.VIEWER
    assert await resolve_role(handler, DAVE, "nb.py", policy) is None
    assert await resolve_role(handler, None, "nb.py", policy) is None


async def test_execute_without_write_is_not_runner():
    # The hierarchy is the protocol's: a runner is an editor who may also run.
    handler = handler_with(RightsAuthorizer({"eve": READ | {("execute", "kernels")}}))
    assert await resolve_role(handler, User("eve"), "nb.py", RolePolicy()) is Role.VIEWER


async def test_authorizer_sees_the_notebook_path(authorizer):
    handler = handler_with(authorizer)
    await resolve_role(handler, BOB, "dir/nb.py", RolePolicy())
    assert authorizer.calls and all(call[3] == "dir/nb.py" for call in authorizer.calls)


async def test_configuration_only_narrows(authorizer):
    handler = handler_with(authorizer)
    policy = RolePolicy(runners=frozenset({"carol"}), viewers=frozenset({"alice"}))
    # Listing carol as a runner does not give her more than the Authorizer's read.
    assert await resolve_role(handler, CAROL, "nb.py", policy) is Role.VIEWER
    assert await resolve_role(handler, ALICE, "nb.py", policy) is Role.VIEWER
    assert await resolve_role(handler, DAVE, "nb.py", policy) is None


async def test_default_role_caps_everyone_but_the_owner(authorizer):
    handler = handler_with(authorizer)
    policy = RolePolicy(default_role=Role.VIEWER, owner="alice", editors=frozenset({"bob"}))
    assert await resolve_role(handler, ALICE, "nb.py", policy) is Role.RUNNER
    assert await resolve_role(handler, BOB, "nb.py", policy) is Role.EDITOR
    assert await resolve_role(handler, CAROL, "nb.py", policy) is Role.VIEWER
    nobody = RolePolicy(default_role=None, owner="alice")
    assert await resolve_role(handler, BOB, "nb.py", nobody) is None
    assert await resolve_role(handler, ALICE, "nb.py", nobody) is Role.RUNNER


async def test_hub_groups_cap_by_their_highest_list():
    authorizer = RightsAuthorizer({"erin": EXECUTE})
    erin = SimpleNamespace(username="erin", hub_user={"name": "erin", "groups": ["students", "ta"]})
    handler = handler_with(authorizer)
    policy = RolePolicy(
        default_role=Role.VIEWER,
        viewer_groups=frozenset({"students"}),
        editor_groups=frozenset({"ta"}),
    )
    assert await resolve_role(handler, erin, "nb.py", policy) is Role.EDITOR


async def test_owner_from_jupyterhub_env(monkeypatch, authorizer):
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    handler = handler_with(authorizer)
    policy = RolePolicy(default_role=Role.VIEWER)
    assert await resolve_role(handler, ALICE, "nb.py", policy) is Role.RUNNER
    assert await resolve_role(handler, BOB, "nb.py", policy) is Role.VIEWER


async def test_stock_token_login_is_the_owner(authorizer):
    # With Jupyter's own providers, whoever holds the server's token or password is its owner.
    handler = handler_with(authorizer, IdentityProvider())
    policy = RolePolicy(default_role=Role.VIEWER)
    assert await resolve_role(handler, ALICE, "nb.py", policy) is Role.RUNNER


def test_policy_from_app_traits():
    app = SimpleNamespace(
        default_role="viewer",
        viewers=["v"],
        editors=["e"],
        runners=[],
        viewer_groups=[],
        editor_groups=["g"],
        runner_groups=[],
        role_recheck_interval=3.0,
    )
    policy = RolePolicy.from_app(app)
    assert policy.default_role is Role.VIEWER
    assert policy.editors == {"e"} and policy.editor_groups == {"g"}
    assert policy.recheck_interval == 3.0
    assert RolePolicy.from_app(SimpleNamespace(default_role="none")).default_role is None
    with pytest.raises(ValueError):
        RolePolicy.from_app(SimpleNamespace(default_role="superuser"))


async def test_viewer_cannot_change_cells_save_or_run(authorizer):
    handler = handler_with(authorizer)
    policy = RolePolicy()
    for message_type in ("join", "cursor", "heartbeat", "pull"):
        assert await authorize_message(handler, CAROL, message_type, "nb.py", policy) is Role.VIEWER
    for message_type in ("change", "cells", "save", "run", "set_ui_value", "stdin"):
        with pytest.raises(Forbidden) as raised:
            await authorize_message(handler, CAROL, message_type, "nb.py", policy)
        assert raised.value.code == "forbidden"


async def test_editor_cannot_run(authorizer):
    handler = handler_with(authorizer)
    policy = RolePolicy()
    assert await authorize_message(handler, BOB, "change", "nb.py", policy) is Role.EDITOR
    for message_type in ("run", "set_ui_value", "interrupt", "restart_kernel", "stdin"):
        with pytest.raises(Forbidden):
            await authorize_message(handler, BOB, message_type, "nb.py", policy)


async def test_one_authorizer_call_per_message(authorizer):
    handler = handler_with(authorizer)
    await authorize_message(handler, ALICE, "run", "nb.py", RolePolicy(), current=Role.RUNNER)
    assert authorizer.calls == [("alice", "execute", "kernels", "nb.py")]


async def test_message_checks_see_a_revocation_at_once():
    rights = {"bob": set(WRITE)}
    handler = handler_with(RightsAuthorizer(rights))
    await authorize_message(handler, BOB, "change", "nb.py", RolePolicy(), current=Role.EDITOR)
    rights["bob"] = set(READ)
    with pytest.raises(Forbidden):
        await authorize_message(handler, BOB, "change", "nb.py", RolePolicy(), current=Role.EDITOR)


async def test_message_checks_respect_the_policy_and_the_current_role(authorizer):
    handler = handler_with(authorizer)
    with pytest.raises(Forbidden):
        await authorize_message(
            handler, ALICE, "run", "nb.py", RolePolicy(editors=frozenset({"alice"}))
        )
    with pytest.raises(Forbidden):
        await authorize_message(handler, ALICE, "run", "nb.py", RolePolicy(), current=Role.EDITOR)


async def test_unknown_message_type_is_bad_request(authorizer):
    with pytest.raises(BadRequest):
        await authorize_message(handler_with(authorizer), ALICE, "sudo", "nb.py", RolePolicy())


# --- identity ---------------------------------------------------------------------------------


def test_identity_is_stamped_from_the_provider():
    user = User("ada", name="Ada Lovelace", avatar_url="https://example.org/a.png")
    ident = identity_of(user)
    assert ident["username"] == "ada"
    assert ident["display_name"] == "Ada Lovelace"
    assert ident["initials"] == "AL"
    assert ident["avatar_url"] == "https://example.org/a.png"
    assert ident["color"] == color_for("ada") and ident["color"] in PALETTE
    assert identity_of(User("ada", color="#000000"))["color"] == "#000000"


def test_colors_are_stable_and_spread():
    assert color_for("alice") == color_for("alice")
    colors = {color_for(f"user{i}") for i in range(200)}
    assert len(colors) == len(PALETTE)
    assert len(set(PALETTE)) == len(PALETTE)


# --- JupyterHub scope authorizer (no hub needed: the hub's user model is data) ----------------


def hub_user(name, scopes, groups=(), kind="user"):
    return SimpleNamespace(
        username=name,
        hub_user={"name": name, "kind": kind, "scopes": list(scopes), "groups": list(groups)},
    )


ACCESS = "access:servers!server=alice/"


class HubLikeProvider(IdentityProvider):
    """Stands for JupyterHubIdentityProvider: the authorizer reads only its access scopes."""

    hub_auth = SimpleNamespace(access_scopes={ACCESS})


@pytest.fixture
def hub_authorizer(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.setenv("JUPYTERHUB_SERVER_NAME", "")
    return HubScopeAuthorizer(identity_provider=HubLikeProvider())


def test_hub_owner_may_do_everything(hub_authorizer):
    alice = hub_user("alice", [ACCESS])
    assert hub_authorizer.level_of(alice) is Level.EXECUTE
    assert hub_authorizer.is_authorized(None, alice, "execute", "terminals")


def test_hub_share_without_custom_scopes_reads_only(hub_authorizer):
    bob = hub_user("bob", [ACCESS])
    assert hub_authorizer.is_authorized(None, bob, "read", "contents")
    assert not hub_authorizer.is_authorized(None, bob, "write", "contents")
    assert not hub_authorizer.is_authorized(None, bob, "execute", "kernels")


def test_hub_custom_scopes_map_to_levels_with_hierarchy(hub_authorizer):
    # No subscope expansion here: execute must imply write and read on its own.
    runner = hub_user("bob", [ACCESS, "custom:marimo-collab:execute!server=alice/"])
    writer = hub_user("bob", [ACCESS, "custom:marimo-collab:write!user=alice"])
    assert hub_authorizer.level_of(runner) is Level.EXECUTE
    assert hub_authorizer.level_of(writer) is Level.WRITE
    assert hub_authorizer.is_authorized(None, writer, "write", "contents")
    assert not hub_authorizer.is_authorized(None, writer, "write", "sessions")
    assert not hub_authorizer.is_authorized(None, writer, "execute", "kernels")


def test_hub_custom_scope_for_another_server_does_not_count(hub_authorizer):
    bob = hub_user("bob", [ACCESS, "custom:marimo-collab:execute!server=zed/"])
    assert hub_authorizer.level_of(bob) is Level.READ


def test_hub_custom_scope_without_access_grants_nothing(hub_authorizer):
    bob = hub_user("bob", ["custom:marimo-collab:execute"])
    assert hub_authorizer.level_of(bob) is Level.NONE
    assert not hub_authorizer.is_authorized(None, bob, "read", "contents")


def test_hub_groups_map_to_levels(hub_authorizer):
    hub_authorizer.group_levels = {"teachers": "execute"}
    assert hub_authorizer.level_of(hub_user("tim", [ACCESS], ["teachers"])) is Level.EXECUTE
    assert hub_authorizer.level_of(hub_user("tim", [], ["teachers"])) is Level.NONE


def test_hub_service_named_like_the_owner_is_not_the_owner(hub_authorizer):
    hub_authorizer.access_level = "none"
    assert hub_authorizer.level_of(hub_user("alice", [ACCESS], kind="service")) is Level.NONE


def test_hub_authorizer_rejects_bad_levels(hub_authorizer):
    with pytest.raises(ValueError):
        hub_authorizer.access_level = "admin"
    with pytest.raises(ValueError):
        hub_authorizer.group_levels = {"g": "everything"}


def test_non_hub_user_gets_nothing(hub_authorizer):
    assert hub_authorizer.level_of(User("alice")) is Level.NONE


# --- refreshing the identity from the hub ----------------------------------------------------


class FakeHubAuth:
    """HubAuth's public surface that refresh_identity uses; answers from a dict of models."""

    access_scopes = {ACCESS}

    def __init__(self, models):
        self.models = models
        self.requests = 0
        self.down = False

    def get_token(self, handler, in_cookie=True):
        return handler.token

    def get_session_id(self, handler):
        return ""

    def check_scopes(self, required, model):
        return check_scopes(required, set(model["scopes"]))

    async def user_for_token(self, token, use_cache=True, session_id="", *, sync=True):
        assert use_cache is False, "a re-check must bypass HubAuth's 300 s cache"
        self.requests += 1
        if self.down:
            raise RuntimeError("hub down")
        return self.models.get(token)


class FakeHubUser(User):
    def __init__(self, model):
        self.hub_user = model
        super().__init__(username=model["name"])


def hub_handler(hub_auth, token, authorizer=None):
    return SimpleNamespace(
        token=token,
        identity_provider=SimpleNamespace(hub_auth=hub_auth),
        authorizer=authorizer,
    )


async def test_refresh_reads_the_hub_and_drops_lost_access():
    model = {"name": "bob", "scopes": [ACCESS], "groups": []}
    hub = FakeHubAuth({"t-bob": model})
    handler = hub_handler(hub, "t-bob")
    bob = FakeHubUser(model)
    fresh = await refresh_identity(handler, bob, max_age=0)
    assert fresh.hub_user == model and isinstance(fresh, FakeHubUser)
    hub.models["t-bob"] = {"name": "bob", "scopes": [], "groups": []}
    assert await refresh_identity(handler, bob, max_age=0) is None
    del hub.models["t-bob"]
    assert await refresh_identity(handler, bob, max_age=0) is None


async def test_refresh_shares_one_hub_request_per_token_per_interval():
    model = {"name": "bob", "scopes": [ACCESS], "groups": []}
    hub = FakeHubAuth({"t-bob": model})
    for _ in range(20):
        await refresh_identity(hub_handler(hub, "t-bob"), FakeHubUser(model), max_age=60)
    assert hub.requests == 1


async def test_refresh_reports_an_unreachable_hub():
    hub = FakeHubAuth({})
    hub.down = True
    with pytest.raises(IdentityUnavailable):
        await refresh_identity(hub_handler(hub, "t-x"), User("x"), max_age=0)


async def test_refresh_outside_jupyterhub_keeps_the_user():
    handler = SimpleNamespace(identity_provider=IdentityProvider())
    assert await refresh_identity(handler, ALICE) is ALICE


# --- the re-check timer ----------------------------------------------------------------------


async def test_watcher_announces_a_downgrade_then_closes_on_lost_read():
    rights = {"bob": set(EXECUTE)}
    handler = handler_with(RightsAuthorizer(rights))
    changes, closes = [], []
    watcher = RoleWatcher(
        handler,
        BOB,
        "nb.py",
        RolePolicy(recheck_interval=0.01),
        Role.RUNNER,
        on_change=lambda role, user: changes.append(role),
        on_revoked=lambda code, reason: closes.append((code, reason)),
    )
    watcher.start()
    rights["bob"] = set(WRITE)
    await _until(lambda: changes)
    assert changes == [Role.EDITOR] and watcher.role is Role.EDITOR
    rights["bob"] = set()
    await _until(lambda: closes)
    assert closes[0][0] == CLOSE_FORBIDDEN == 4403
    assert "revoked" in closes[0][1] and len(closes[0][1].encode()) <= 123
    assert watcher.role is None
    await asyncio.sleep(0.05)
    assert len(closes) == 1
    watcher.stop()


async def test_watcher_trusts_the_last_answer_while_the_hub_is_briefly_down():
    model = {"name": "bob", "scopes": [ACCESS], "groups": []}
    hub = FakeHubAuth({"t-bob": model})
    authorizer = RightsAuthorizer({"bob": set(WRITE)})
    handler = hub_handler(hub, "t-bob", authorizer)
    closes = []
    watcher = RoleWatcher(
        handler,
        FakeHubUser(model),
        "nb.py",
        RolePolicy(recheck_interval=0.01, recheck_grace=0.2),
        Role.EDITOR,
        on_change=lambda role, user: None,
        on_revoked=lambda code, reason: closes.append((code, reason)),
    )
    hub.down = True
    assert await watcher.check_now() is Role.EDITOR
    assert not closes
    await asyncio.sleep(0.25)
    assert await watcher.check_now() is None
    assert closes and closes[0][0] == CLOSE_FORBIDDEN


async def test_watcher_keeps_the_refreshed_user_for_message_checks():
    old = {"name": "bob", "scopes": [ACCESS], "groups": []}
    new = {"name": "bob", "scopes": [ACCESS], "groups": ["ta"]}
    hub = FakeHubAuth({"t-bob": new})
    handler = hub_handler(hub, "t-bob", RightsAuthorizer({"bob": set(WRITE)}))
    watcher = RoleWatcher(
        handler,
        FakeHubUser(old),
        "nb.py",
        RolePolicy(recheck_interval=0.01),
        Role.EDITOR,
        on_change=lambda role, user: None,
        on_revoked=lambda code, reason: None,
    )
    await watcher.check_now()
    assert watcher.user.hub_user["groups"] == ["ta"]


async def _until(predicate, timeout=2.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


# --- end to end on a plain jupyter_server: two identities with different rights ----------------


class TableIdentityProvider(IdentityProvider):
    """Token header -> person, for two people besides the server's own token."""

    people = {"vera-token": "vera", "eddie-token": "eddie"}

    async def get_user(self, handler):
        header = handler.request.headers.get("Authorization", "")
        name = self.people.get(header.removeprefix("token ").strip())
        return User(name) if name else await super().get_user(handler)


class TableAuthorizer(Authorizer):
    """Rights per username, changeable while sockets are open; anyone else has everything."""

    rights: dict[str, set[tuple[str, str]]] = {}

    def is_authorized(self, handler, user, action, resource):
        rights = self.rights.get(user.username)
        return True if rights is None else (action, resource) in rights


@pytest.fixture
def jp_server_config(journal_dir):
    TableAuthorizer.rights = {"vera": set(READ), "eddie": set(WRITE)}
    return {
        "ServerApp": {
            "jpserver_extensions": {"marimo_collab_ext": True},
            "identity_provider_class": TableIdentityProvider,
            "authorizer_class": TableAuthorizer,
        },
        "MarimoCollab": {
            "journal_dir": str(journal_dir),
            "role_recheck_interval": 0.2,
            "room_idle_timeout": 0.5,
        },
    }


async def socket_as(server, notebook, token):
    url = server["url"].replace("http://", "ws://") + f"api/marimo-collab/ws?path={notebook}"
    peer = await Peer.connect(url, token)
    joined = await peer.join()
    assert joined["status"] == "ok", joined
    return peer, joined


def append(cell, text):
    end = len(cell["code"].encode("utf-16-le")) // 2
    return {
        "type": "change",
        "document_id": cell["id"],
        "version": cell["version"],
        "updates": [
            {
                "clientID": f"t{time.monotonic_ns()}",
                "changes": [{"from": end, "to": end, "insert": text}],
            }
        ],
    }


async def test_viewer_and_editor_on_one_server(server, notebook):
    vera, joined_v = await socket_as(server, notebook, "vera-token")
    eddie, joined_e = await socket_as(server, notebook, "eddie-token")
    assert joined_v["self"]["role"] == "viewer" and joined_e["self"]["role"] == "editor"
    assert joined_v["self"]["user"]["username"] == "vera"
    cell = joined_e["notebook"]["cells"][-1]
    assert (await eddie.request(append(cell, " # eddie")))["status"] == "ok"
    for attempt in (append(cell, " # vera"), {"type": "save"}, {"type": "run", "cell_ids": []}):
        reply = await vera.request(attempt)
        assert reply["error"]["code"] == "forbidden", reply
    reply = await eddie.request({"type": "run", "cell_ids": [cell["id"]]})
    assert reply["error"]["code"] == "forbidden", reply
    await vera.close()
    await eddie.close()


async def test_changed_rights_reach_an_open_socket(server, notebook):
    eddie, joined = await socket_as(server, notebook, "eddie-token")
    me = joined["self"]["peer_id"]
    TableAuthorizer.rights["eddie"] = set(READ)
    await eddie.next(
        lambda m: (
            m.get("type") == "presence"
            and m["peer"]["peer_id"] == me
            and m["peer"]["role"] == "viewer"
        ),
        timeout=10,
    )
    cell = joined["notebook"]["cells"][-1]
    assert (await eddie.request(append(cell, " # late")))["error"]["code"] == "forbidden"
    TableAuthorizer.rights["eddie"] = set()
    code, reason = await eddie.wait_closed(timeout=10)
    assert code == CLOSE_FORBIDDEN and reason


async def test_a_grant_never_raises_a_peer_above_the_role_it_joined_with(server, notebook):
    url = server["url"].replace("http://", "ws://") + f"api/marimo-collab/ws?path={notebook}"
    narrowed = await Peer.connect(url, "eddie-token")
    joined = await narrowed.request({"type": "join", "peer_id": "eddie-agent", "role": "viewer"})
    assert joined["self"]["role"] == "viewer"
    watching, _ = await socket_as(server, notebook, "eddie-token")
    TableAuthorizer.rights["eddie"] = set(EXECUTE)  # eddie may now run
    # The un-narrowed socket's re-check sees it; the narrowed one's, on the same interval too.
    await watching.next(lambda m: m.get("type") == "presence" and m["event"] == "update"
                        and m["peer"]["peer_id"] != "eddie-agent"
                        and m["peer"]["role"] == "runner", timeout=10)
    await asyncio.sleep(1.0)  # several re-check intervals (0.2 s) of the narrowed socket
    # Peers see it as it joined, and the server holds it to that.
    late, seen = await socket_as(server, notebook, "vera-token")
    assert {p["peer_id"]: p["role"] for p in seen["peers"]}["eddie-agent"] == "viewer"
    await late.close()
    cell = joined["notebook"]["cells"][-1]
    assert (await narrowed.request(append(cell, " # x")))["error"]["code"] == "forbidden"
    reply = await narrowed.request({"type": "run", "cell_ids": [cell["id"]]})
    assert reply["error"]["code"] == "forbidden"
    await narrowed.close()
    await watching.close()
