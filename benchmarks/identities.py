"""Many people on one plain jupyter_server, for bench_lecture.py: a token names its person.

`lecture-<name>` is the person <name>; `teacher` may read, write and run, anyone else only
reads (a viewer). Nobody is the server's owner, so per-user limits apply to everyone.
"""

from __future__ import annotations

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import IdentityProvider, User

PREFIX = "lecture-"
TEACHER = "teacher"


def token_of(name: str) -> str:
    return PREFIX + name


class PersonPerToken(IdentityProvider):
    """`Authorization: token lecture-<name>` is <name>; anything else is nobody."""

    def get_user(self, handler):
        header = handler.request.headers.get("Authorization", "")
        token = header[len("token "):] if header.startswith("token ") else ""
        if not token.startswith(PREFIX) or len(token) == len(PREFIX):
            return None
        name = token[len(PREFIX):]
        return User(username=name, name=name, display_name=name)


class TeacherRuns(Authorizer):
    """The teacher may do anything; everyone else may read."""

    def is_authorized(self, handler, user, action, resource):
        return user.username == TEACHER or (action, resource) == ("read", "contents")


SERVER_ARGS = ["--ServerApp.identity_provider_class=benchmarks.identities.PersonPerToken",
               "--ServerApp.authorizer_class=benchmarks.identities.TeacherRuns"]
