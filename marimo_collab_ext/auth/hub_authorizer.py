"""An Authorizer for single-user servers that maps JupyterHub scopes to read / write / execute.

Enable: `c.ServerApp.authorizer_class = "marimo_collab_ext.auth.hub_authorizer.HubScopeAuthorizer"`
"""

from __future__ import annotations

import os
from enum import IntEnum
from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyterhub.services.auth import check_scopes
from traitlets import Dict, Set, Unicode, default, validate


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

        Needs the level `level_needed(action, resource)`; the user has `level_of(user)`.
        """
        allowed = self.level_of(user) >= self.level_needed(action, resource)
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

    def level_of(self, user: Any) -> Level:
        """The level a hub user holds on this server, from their (cached) hub model.

        Refused outright (NONE) without the server's access scope, whatever else they hold.
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
        level = Level.parse(self.access_level)
        for candidate in (Level.EXECUTE, Level.WRITE, Level.READ):
            if check_scopes(self._scope_for(candidate), scopes):
                level = max(level, candidate)
                break
        for group in hub_user.get("groups") or ():
            if group in self.group_levels:
                level = max(level, Level.parse(self.group_levels[group]))
        return level

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
