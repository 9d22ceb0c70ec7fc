"""Who may do what in a room: roles from Jupyter's Authorizer, narrowed by configuration.

See docs/protocol.md "Roles" and docs/jupyterhub.md.
"""

from .identity import IdentityUnavailable, color_for, identity_of, refresh_identity
from .recheck import CLOSE_FORBIDDEN, Recheck, RoleWatcher, recheck
from .roles import (
    ACTIONS,
    Role,
    RolePolicy,
    authorize_message,
    is_owner,
    required_role,
    resolve_role,
)

__all__ = [
    "ACTIONS",
    "CLOSE_FORBIDDEN",
    "IdentityUnavailable",
    "Recheck",
    "Role",
    "RolePolicy",
    "RoleWatcher",
    "authorize_message",
    "color_for",
    "identity_of",
    "is_owner",
    "recheck",
    "refresh_identity",
    "required_role",
    "resolve_role",
]
