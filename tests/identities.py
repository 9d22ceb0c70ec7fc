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


COOKIE = "marimo-collab-test-person"


class TokenPerPerson(IdentityProvider):
    """`Authorization: token <t>` or `?token=<t>` names one of several people; no token, nobody.

    A browser that opened a page with `?token=` keeps being that person through a cookie, the
    way Jupyter's own login works, so each browser context is a different person.
    """

    def get_user(self, handler):
        header = handler.request.headers.get("Authorization", "")
        token = header[len("token "):] if header.startswith("token ") else None
        query_token = handler.get_argument("token", None)
        # JupyterLab's page also sends the server's own token in a header: try each source
        candidates = [token, query_token, handler.get_cookie(COOKIE)]
        username = next((TOKENS[t] for t in candidates if t in TOKENS), None)
        if username is None:
            return None
        if query_token and handler.request.headers.get("Upgrade", "").lower() != "websocket":
            handler.set_cookie(COOKIE, query_token, httponly=True)
        return User(username=username, name=username.title(),
                    display_name=f"{username.title()} Example")


class RightsPerPerson(Authorizer):
    """Grants each person the rights in RIGHTS."""

    def is_authorized(self, handler, user, action, resource):
        return (action, resource) in RIGHTS.get(user.username, set())
