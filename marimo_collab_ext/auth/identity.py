"""Who a peer is: the server-stamped identity sent in `join` and `presence`, and its refresh.

A client never sets any of it (docs/protocol.md "Joining").
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

# Well-separated hues that read on light and dark themes (Tableau 10 / Kelly, reordered so
# neighbours differ in hue and lightness).
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#e377c2",
    "#8c564b",
    "#bcbd22",
    "#393b79",
    "#ad494a",
    "#637939",
    "#7b4173",
    "#e6550d",
    "#3182bd",
    "#843c39",
)


def color_for(username: str) -> str:
    """A stable colour for a username, the same on every server and in every room.

    A hash picks from PALETTE, so two people share a colour only beyond its 16 entries' luck.
    """
    digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).digest()
    return PALETTE[int.from_bytes(digest[:4], "big") % len(PALETTE)]


def identity_of(user: Any) -> dict[str, Any]:
    """The identity the server stamps on a peer, from the IdentityProvider's user.

    JupyterHub's `user_info` arrives through JupyterHubUser's fields; a colour the provider
    set wins over the palette.
    """
    username = user.username
    name = getattr(user, "name", "") or username
    display_name = getattr(user, "display_name", "") or name
    initials = getattr(user, "initials", None) or _initials(display_name)
    return {
        "username": username,
        "name": name,
        "display_name": display_name,
        "initials": initials,
        "avatar_url": getattr(user, "avatar_url", None),
        "color": getattr(user, "color", None) or color_for(username),
    }


def _initials(display_name: str) -> str:
    words = [w for w in display_name.replace("_", " ").replace(".", " ").split() if w]
    if len(words) >= 2:
        return (words[0][0] + words[-1][0]).upper()
    return display_name[:2].upper() if display_name else "?"


class IdentityUnavailable(Exception):
    """The hub could not be asked (down, slow, 5xx): the caller keeps the last known answer."""


# token hash -> (monotonic time, hub model or None). Shared by all sockets of one token, so a
# user with many notebooks open costs the hub one request per interval, not one per socket.
_fresh: dict[str, tuple[float, dict | None]] = {}


async def refresh_identity(handler: Any, user: Any, *, max_age: float = 5.0) -> Any:
    """The handler's user re-read from JupyterHub now (bypassing HubAuth's 300 s cache).

    Outside JupyterHub returns `user` unchanged; None when the hub no longer knows the token or
    it lost access to this server. Raises IdentityUnavailable when the hub cannot answer.
    """
    hub_auth = getattr(getattr(handler, "identity_provider", None), "hub_auth", None)
    if hub_auth is None or user is None:
        return user
    # Header, ?token= (browser WebSockets) or the OAuth cookie, as at the upgrade.
    token = hub_auth.get_token(handler, in_cookie=True)
    if not token:
        return None
    key = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
    now = time.monotonic()
    cached = _fresh.get(key)
    if cached is not None and now - cached[0] < max_age:
        model = cached[1]
    else:
        try:
            model = await hub_auth.user_for_token(
                token, use_cache=False, session_id=hub_auth.get_session_id(handler), sync=False
            )
        except Exception as e:  # tornado HTTPError 500/502 from HubAuth, connection errors
            raise IdentityUnavailable(f"JupyterHub did not answer: {type(e).__name__}") from None
        _prune(now, max_age)
        _fresh[key] = (now, model)
    if model is None or not hub_auth.check_scopes(hub_auth.access_scopes, model):
        return None
    return type(user)(model) if hasattr(user, "hub_user") else _hub_user(model)


def _hub_user(model: dict) -> Any:
    from jupyterhub.singleuser.extension import JupyterHubUser

    return JupyterHubUser(model)


def _prune(now: float, max_age: float) -> None:
    for key in [k for k, (at, _) in _fresh.items() if now - at >= max_age]:
        del _fresh[key]


def agent_identity(user: dict[str, Any]) -> dict[str, Any]:
    """The identity of a program acting for `user` (a `join` with `"agent": true`).

    Still the user's username, so it can do nothing the user cannot; named and coloured so
    peers tell it from the user's own editors (docs/protocol.md, "Agents and narrowed roles").
    """
    display_name = f"{user['display_name']}'s agent"
    return {**user, "display_name": display_name, "initials": "AI", "agent": True,
            "color": color_for(display_name)}
