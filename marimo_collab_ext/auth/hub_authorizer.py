"""An Authorizer for single-user servers that maps JupyterHub scopes to read / write / execute.

Enable: `c.ServerApp.authorizer_class = "marimo_collab_ext.auth.hub_authorizer.HubScopeAuthorizer"`
"""

from __future__ import annotations

import json
import os
import posixpath
from enum import IntEnum
from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.services.contents.handlers import CheckpointsHandler, ModifyCheckpointsHandler
from jupyterhub.services.auth import check_scopes
from traitlets import Dict, Set, Unicode, default, validate

from ..grants.store import GrantStore
from .roles import PATH_ATTRIBUTE


class Level(IntEnum):
    """What a user may do on this server; each level includes the ones below.

    Custom scopes `<prefix>:read`, `:write`, `:execute` grant the level of their name.
    """

    NONE = 0
    READ = 1
    WRITE = 2
    EXECUTE = 3

    @classmethod
    def parse(cls, name: str) -> Level:
        """The level named `name` ("none", "read", "write", "execute"); ValueError otherwise."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown level {name!r}: none, read, write or execute") from None


class HubScopeAuthorizer(Authorizer):
    """Grants each hub user the level of their custom scopes and groups; the owner gets all.

    Stock JupyterHub lets anyone with `access:servers` do everything; this narrows them.
    """

    scope_prefix = Unicode(
        "custom:marimo-collab",
        help="Prefix of the custom scopes: define `<prefix>:read`, `:write`, `:execute` in hub.",
    ).tag(config=True)

    access_level = Unicode(
        "read",
        help="Level of a user the hub lets in (access:servers) who holds none of the custom scopes"
        " and none of `group_levels`: none, read, write or execute.",
    ).tag(config=True)

    group_levels = Dict(
        value_trait=Unicode(),
        help="JupyterHub group name -> level (read, write, execute) for its members.",
    ).tag(config=True)

    write_resources = Set(
        Unicode(),
        {"contents"},
        help="Resources whose `write` action needs only the write level; any other write and"
        " every execute (kernels, terminals, sessions) needs execute.",
    ).tag(config=True)

    owner = Unicode(help="The server's own user, who may do everything ($JUPYTERHUB_USER).").tag(
        config=True
    )

    server_name = Unicode(help="This server's name ($JUPYTERHUB_SERVER_NAME; '' for the default).")

    @default("owner")
    def _owner_default(self) -> str:
        return os.environ.get("JUPYTERHUB_USER", "")

    @default("server_name")
    def _server_name_default(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVER_NAME", "")

    @validate("access_level")
    def _valid_access_level(self, proposal: dict) -> str:
        Level.parse(proposal["value"])
        return proposal["value"]

    @validate("group_levels")
    def _valid_group_levels(self, proposal: dict) -> dict:
        for level in proposal["value"].values():
            Level.parse(level)
        return proposal["value"]

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        """Whether `user` may perform `action` on `resource` here (jupyter_server's question).

        Needs the level `level_needed(action, resource)`; the user has `level_of(user)` on the
        whole server, or more on one notebook through a grant (docs/jupyterhub.md).
        """
        needed = self.level_needed(action, resource)
        store = grant_store_of(handler)
        hub_user = getattr(user, "hub_user", None)
        owner = isinstance(hub_user, dict) and self._is_owner(hub_user)
        path = request_path(handler, resource)
        if not owner and store is not None and path is not None and store.is_state_path(path):
            allowed = False  # the grants file itself, should it lie inside the served folder
        elif self.level_of(user, store) >= needed:
            allowed = True
        else:
            allowed = path is not None and self._granted(handler, hub_user, store, path, needed,
                                                         action, resource)
        if not allowed:
            self.log.debug(
                "HubScopeAuthorizer: %s may not %s %s",
                getattr(user, "username", None),
                action,
                resource,
            )
        return allowed

    def level_needed(self, action: str, resource: str) -> Level:
        """The least level for an action on a resource: read any, write contents, the rest all."""
        if action == "read":
            return Level.READ
        if action == "write" and resource in self.write_resources:
            return Level.WRITE
        return Level.EXECUTE

    def level_of(self, user: Any, grants: GrantStore | None = None) -> Level:
        """The level a hub user holds on the whole server, from their (cached) hub model.

        Refused outright (NONE) without the server's access scope, whatever else they hold.
        `access_level` applies only to users without grants: a grantee is confined to them.
        """
        hub_user = getattr(user, "hub_user", None)
        if not isinstance(hub_user, dict):
            return Level.NONE
        if self._is_owner(hub_user):
            return Level.EXECUTE
        scopes = set(hub_user.get("scopes") or ())
        # The identity provider checked this already; checking again keeps this class safe alone.
        if not check_scopes(self._access_scopes(), scopes):
            return Level.NONE
        level = Level.NONE
        for candidate in (Level.EXECUTE, Level.WRITE, Level.READ):
            if check_scopes(self._scope_for(candidate), scopes):
                level = max(level, candidate)
                break
        for group in hub_user.get("groups") or ():
            if group in self.group_levels:
                level = max(level, Level.parse(self.group_levels[group]))
        if not (grants is not None and grants.has_grants(*_grantee_of(hub_user))):
            level = max(level, Level.parse(self.access_level))
        return level

    def _granted(self, handler: Any, hub_user: Any, store: GrantStore | None, path: str,
                 needed: Level, action: str, resource: str) -> bool:
        """Whether a grant on `path` gives `needed`; REST writes through a grant only save."""
        if store is None or not isinstance(hub_user, dict):
            return False
        if not check_scopes(self._access_scopes(), set(hub_user.get("scopes") or ())):
            return False
        role = store.role_for(*_grantee_of(hub_user), path)
        if role is None or Level(int(role)) < needed:
            return False
        if getattr(handler, PATH_ATTRIBUTE, None) is not None:
            return True  # our socket: each message's own check
        # Jupyter's REST API: read the file, save it in place, or create, restore and delete its
        # checkpoints (JupyterLab makes one on opening); no copy, rename, delete or new file.
        return action == "read" or (resource == "contents" and _is_plain_save(handler))

    def _is_owner(self, hub_user: dict) -> bool:
        # A service may share the owner's name; only the user of that name owns the server.
        return (
            bool(self.owner)
            and hub_user.get("kind", "user") == "user"
            and (hub_user.get("name") == self.owner)
        )

    def _scope_for(self, level: Level) -> str:
        # Filtered to this server: `!server=owner/name` and `!user=owner` grants both match.
        return f"{self.scope_prefix}:{level.name.lower()}!server={self.owner}/{self.server_name}"

    def _access_scopes(self) -> set[str]:
        hub_auth = getattr(self.identity_provider, "hub_auth", None)
        scopes = set(getattr(hub_auth, "access_scopes", None) or ())
        return scopes or {f"access:servers!server={self.owner}/{self.server_name}"}


def grant_store_of(handler: Any) -> GrantStore | None:
    """The extension's grant store, reached through the handler's tornado settings."""
    settings = getattr(handler, "settings", None)
    app = settings.get("marimo_collab") if isinstance(settings, dict) else None
    return getattr(app, "grant_store", None)


def request_path(handler: Any, resource: str) -> str | None:
    """The file or folder a request is about: our socket's notebook, or a contents/files URL.

    None when the request names no path (kernels, terminals, ...) or leaves the root.
    """
    path = getattr(handler, PATH_ATTRIBUTE, None)
    if path is None and resource == "contents" and handler is not None:
        kwargs = getattr(handler, "path_kwargs", None) or {}
        args = getattr(handler, "path_args", None) or ()
        path = kwargs.get("path", args[0] if args else None)
    if not isinstance(path, str):
        return None
    normalized = posixpath.normpath(path.strip("/")) if path.strip("/") else ""
    if normalized == ".":
        normalized = ""
    if normalized.startswith("..") or "\x00" in normalized:
        return None
    return normalized


def _grantee_of(hub_user: dict) -> tuple[str, frozenset[str]]:
    # Grants name hub users; a service of the same name is not that user.
    if hub_user.get("kind", "user") != "user":
        return ("", frozenset())
    groups = frozenset(g for g in hub_user.get("groups") or () if isinstance(g, str))
    return (str(hub_user.get("name") or ""), groups)


def _is_plain_save(handler: Any) -> bool:
    request = getattr(handler, "request", None)
    if request is None:
        return False
    if isinstance(handler, (CheckpointsHandler, ModifyCheckpointsHandler)):
        return request.method in ("POST", "DELETE")
    if request.method != "PUT":
        return False
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return False
    return isinstance(body, dict) and not body.get("copy_from")
