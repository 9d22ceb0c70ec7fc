"""Roles (viewer < editor < runner): what each message needs and what a user may do.

docs/protocol.md "Roles": Jupyter's Authorizer grants, the extension's configuration only narrows.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ..room.errors import BadRequest, Forbidden


class Role(IntEnum):
    """A peer's permission level in a room; a higher value includes the lower ones.

    The wire spells them by `wire_name` ("viewer", "editor", "runner").
    """

    VIEWER = 1
    EDITOR = 2
    RUNNER = 3

    @property
    def wire_name(self) -> str:
        """The role as written in `join`, `presence` and `self` (docs/protocol.md "Roles")."""
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> Role:
        """The role named `name` ("viewer", "editor", "runner"); ValueError otherwise."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {name!r}: expected viewer, editor or runner") from None


# The least role each client message type needs. Unknown types need a decision, not a default.
ACTIONS: dict[str, Role] = {
    "join": Role.VIEWER,
    "cursor": Role.VIEWER,
    "heartbeat": Role.VIEWER,
    "pull": Role.VIEWER,
    "history": Role.VIEWER,
    "cell_history": Role.VIEWER,
    "blame": Role.VIEWER,
    # Suggesting needs an editor (a viewer may not add to the shared notebook at all);
    # `marimo-collab mcp --suggest` is an editor that only suggests.
    "suggest": Role.EDITOR,
    "accept_suggestion": Role.EDITOR,
    "reject_suggestion": Role.EDITOR,
    "restore_notebook": Role.EDITOR,
    "change": Role.EDITOR,
    "cells": Role.EDITOR,
    "save": Role.EDITOR,
    "run": Role.RUNNER,
    "set_ui_value": Role.RUNNER,
    "interrupt": Role.RUNNER,
    "restart_kernel": Role.RUNNER,
    "stdin": Role.RUNNER,
    "set_model_value": Role.RUNNER,
    # Any other function runs code with effects; read-only queries need less (`required_role`).
    "function_call": Role.RUNNER,
}

# Functions of marimo 0.25 UI elements (`Function(name=...)` in marimo/_plugins) that only read:
# they change neither the notebook's values nor the element's value (no cell reruns), beyond
# caches and the element's record of the last search (docs/protocol.md, "Read-only functions").
# Keyed by the element's tag, so a same-named function of another element is never let through.
# Left out on purpose: chatbot send_prompt / cancel_prompt / delete_* (change the history, run
# the model), file-browser list_directory (lists the server's folders as the server's user),
# form validate, lazy and download `load` (call the notebook author's code), panel send_to_widget.
READ_ONLY_FUNCTIONS: dict[str, frozenset[str]] = {
    "marimo-table": frozenset({
        "search", "get_column_summaries", "get_row_ids", "calculate_top_k_rows",
        "preview_column", "get_data_url", "download_as", "download_geojson",
        "get_export_metadata", "get_size_bytes",
    }),
    "marimo-dataframe": frozenset({
        "get_dataframe", "get_column_values", "search", "download_as", "download_geojson",
        "get_export_metadata", "get_size_bytes",
    }),
    "marimo-chatbot": frozenset({"get_chat_history"}),
}

# The one Authorizer question behind each role (docs/protocol.md "Roles").
AUTHORIZER_CHECKS: dict[Role, tuple[str, str]] = {
    Role.VIEWER: ("read", "contents"),
    Role.EDITOR: ("write", "contents"),
    Role.RUNNER: ("execute", "kernels"),
}

# Set on the handler before each Authorizer call, so a path-aware Authorizer can scope its answer.
PATH_ATTRIBUTE = "marimo_collab_path"


def required_role(message_type: str, function: tuple[str, str] | None = None) -> Role | None:
    """The least role a client message of this type needs.

    `function` is (element tag, function name) of a `function_call`: read-only ones need a viewer.
    None for a type this table does not know: the caller answers `bad_request`.
    """
    if (message_type == "function_call" and function is not None
            and function[1] in READ_ONLY_FUNCTIONS.get(function[0], ())):
        return Role.VIEWER
    return ACTIONS.get(message_type)


@dataclass(frozen=True)
class RolePolicy:
    """The extension's own narrowing of roles: caps per user and per JupyterHub group.

    Feed it from the app's traits with `RolePolicy.from_app(app)`; it never raises a role.
    """

    default_role: Role | None = Role.RUNNER
    viewers: frozenset[str] = frozenset()
    editors: frozenset[str] = frozenset()
    runners: frozenset[str] = frozenset()
    viewer_groups: frozenset[str] = frozenset()
    editor_groups: frozenset[str] = frozenset()
    runner_groups: frozenset[str] = frozenset()
    # The server's own user, who is never capped. None: JUPYTERHUB_USER, else see `is_owner`.
    owner: str | None = None
    recheck_interval: float = 5.0
    # How long a failing identity refresh (hub unreachable) may keep the last known role.
    recheck_grace: float = 60.0

    @classmethod
    def from_app(cls, app: Any) -> RolePolicy:
        """A policy from the extension app's traits (`default_role`, `viewers`, ...).

        Missing traits keep their defaults, so the app may add them one at a time.
        """

        def names(attr: str) -> frozenset[str]:
            return frozenset(getattr(app, attr, None) or ())

        default = getattr(app, "default_role", "runner")
        interval = float(getattr(app, "role_recheck_interval", 5.0))
        owner = getattr(app, "owner", None) or None
        return cls(
            default_role=_parse_optional_role(default),
            viewers=names("viewers"),
            editors=names("editors"),
            runners=names("runners"),
            viewer_groups=names("viewer_groups"),
            editor_groups=names("editor_groups"),
            runner_groups=names("runner_groups"),
            owner=owner,
            recheck_interval=interval if interval > 0 else 5.0,
            recheck_grace=float(getattr(app, "role_recheck_grace", 60.0)),
        )

    def cap(self, username: str, groups: Iterable[str] = (), *, owner: bool = False) -> Role | None:
        """The most this user may be granted here (None: nothing), before the Authorizer.

        Listed users and groups get their list's role (the highest that matches); others get
        `default_role`; the owner is never capped.
        """
        if owner:
            return Role.RUNNER
        groups = frozenset(groups)
        matches = [
            role
            for role, users, hub_groups in (
                (Role.RUNNER, self.runners, self.runner_groups),
                (Role.EDITOR, self.editors, self.editor_groups),
                (Role.VIEWER, self.viewers, self.viewer_groups),
            )
            if username in users or groups & hub_groups
        ]
        return max(matches) if matches else self.default_role


def _parse_optional_role(value: Role | str | None) -> Role | None:
    if value is None or isinstance(value, Role):
        return value
    if value.strip().lower() in ("", "none"):
        return None
    return Role.parse(value)


def groups_of(user: Any) -> frozenset[str]:
    """The JupyterHub groups of an authenticated user; empty outside JupyterHub.

    The hub puts them in the user model when the token may read the user's own groups.
    """
    hub_user = getattr(user, "hub_user", None)
    if isinstance(hub_user, dict):
        return frozenset(g for g in hub_user.get("groups") or () if isinstance(g, str))
    return frozenset()


def is_owner(handler: Any, user: Any, policy: RolePolicy) -> bool:
    """Whether `user` is this server's own user, who is never narrowed.

    Configured owner, else JupyterHub's $JUPYTERHUB_USER, else (stock token or password login,
    one identity per server) everyone who authenticated.
    """
    owner = policy.owner or os.environ.get("JUPYTERHUB_USER")
    if owner:
        return getattr(user, "username", None) == owner
    provider = getattr(handler, "identity_provider", None)
    return provider is not None and _is_single_identity(provider)


def _is_single_identity(provider: Any) -> bool:
    # Jupyter's own providers hand the server's token or password to its owner only; a custom
    # provider may know many people, so nobody is the owner unless configured.
    from jupyter_server.auth.identity import (
        IdentityProvider,
        LegacyIdentityProvider,
        PasswordIdentityProvider,
    )

    return type(provider) in (IdentityProvider, PasswordIdentityProvider, LegacyIdentityProvider)


async def is_authorized(handler: Any, user: Any, action: str, resource: str, path: str) -> bool:
    """One question to the server's Authorizer, sync or async alike (jupyter_server 2).

    `path` is set on the handler as `marimo_collab_path` for Authorizers that scope by file.
    """
    setattr(handler, PATH_ATTRIBUTE, path)
    answer = handler.authorizer.is_authorized(handler, user, action, resource)
    if inspect.isawaitable(answer):
        answer = await answer
    return bool(answer)


async def resolve_role(handler: Any, user: Any, path: str, policy: RolePolicy) -> Role | None:
    """The user's role for the notebook at `path`: what the Authorizer grants, narrowed.

    None when the user may not read it: refuse the upgrade, or close the socket.
    """
    if user is None:
        return None
    granted: Role | None = None
    for role in Role:  # ascending: each level requires the one below
        action, resource = AUTHORIZER_CHECKS[role]
        if not await is_authorized(handler, user, action, resource, path):
            break
        granted = role
    if granted is None:
        return None
    cap = policy.cap(user.username, groups_of(user), owner=is_owner(handler, user, policy))
    if cap is None:
        return None
    return min(granted, cap)


async def authorize_message(
    handler: Any,
    user: Any,
    message_type: str,
    path: str,
    policy: RolePolicy,
    *,
    current: Role | None = None,
    function: tuple[str, str] | None = None,
) -> Role:
    """Check one client message: one Authorizer call for its action, then the policy's cap.

    Returns the role the message needed; raises Forbidden (BadRequest for unknown types).
    `current` is the connection's last resolved role, so a runner must also still be an editor;
    `function` is what a `function_call` calls (see `required_role`).
    """
    needed = required_role(message_type, function)
    if needed is None:
        raise BadRequest(f"unknown message type {message_type!r}")
    what = (f"call {function[1]!r} of a {function[0]}" if function is not None
            else repr(message_type))
    if user is None:
        raise Forbidden("not authenticated")
    if current is not None and current < needed:
        raise Forbidden(_refusal(what, needed, current))
    action, resource = AUTHORIZER_CHECKS[needed]
    if not await is_authorized(handler, user, action, resource, path):
        raise Forbidden(f"{what} needs {action} permission on {resource}")
    cap = policy.cap(user.username, groups_of(user), owner=is_owner(handler, user, policy))
    if cap is None or cap < needed:
        raise Forbidden(_refusal(what, needed, cap))
    return needed


def _refusal(what: str, needed: Role, have: Role | None) -> str:
    have_name = have.wire_name if have is not None else "no role"
    return f"{have_name} may not {what}: it needs {needed.wire_name}"
