"""A plain jupyter_server with several people: tokens name users, an Authorizer gives rights."""

from __future__ import annotations

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import IdentityProvider, User

# token -> user, and what each may do (docs/protocol.md "Roles")
TOKENS = {"vera-token": "vera", "eddie-token": "eddie", "rita-token": "rita"}
RIGHTS = {
    "vera": {("read", "contents")},
    "eddie": {("read", "contents"), ("write", "contents")},
    "rita": {("read", "contents"), ("write", "contents"), ("execute", "kernels")},
}


class TokenPerPerson(IdentityProvider):
    """`Authorization: token <t>` names one of several people; no token, nobody."""

    def get_user(self, handler):
        header = handler.request.headers.get("Authorization", "")
        token = header[len("token "):] if header.startswith("token ") else None
        token = token or handler.get_argument("token", None)
        username = TOKENS.get(token or "")
        if username is None:
            return None
        return User(username=username, name=username.title(),
                    display_name=f"{username.title()} Example")


class RightsPerPerson(Authorizer):
    """Grants each person the rights in RIGHTS."""

    def is_authorized(self, handler, user, action, resource):
        return (action, resource) in RIGHTS.get(user.username, set())
