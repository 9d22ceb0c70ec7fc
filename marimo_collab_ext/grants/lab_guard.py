"""Make JupyterLab's settings and workspaces writes ask the Authorizer.

jupyterlab_server 2.28 checks only that someone is logged in, so a viewer (or a guest confined to
one notebook) could rewrite the owner's JupyterLab settings. Each of those handler classes is
replaced, in the server's routing table, by a subclass that first asks the Authorizer for
`write` on `settings` or `workspaces` (HubScopeAuthorizer: needs execute; grants never reach it).
Installed by the app under HubScopeAuthorizer only.
"""

from __future__ import annotations

import inspect
from typing import Any

from tornado import web

# jupyterlab_server handler class name -> the Authorizer resource its writes need.
GUARDED = {"SettingsHandler": "settings", "WorkspacesHandler": "workspaces"}
READS = {"GET", "HEAD", "OPTIONS"}


class _AuthorizedWrites:
    """Mixin: refuse non-read methods the Authorizer does not allow on `guarded_resource`."""

    guarded_resource = ""

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        result = super().prepare(*args, **kwargs)  # type: ignore[misc]
        if inspect.isawaitable(result):
            await result
        if self.request.method in READS or self.current_user is None:
            return  # unauthenticated: the handler's own @web.authenticated answers
        answer = self.authorizer.is_authorized(self, self.current_user, "write",
                                               self.guarded_resource)
        if inspect.isawaitable(answer):
            answer = await answer
        if not answer:
            raise web.HTTPError(403, f"no write permission on {self.guarded_resource}")


def guard_lab_handlers(web_app: Any) -> int:
    """Swap jupyterlab_server's settings and workspaces handlers for guarded ones.

    Idempotent; returns how many routes it changed.
    """
    changed = 0
    for rule in _rules(web_app.default_router):
        target = rule.target
        if not isinstance(target, type) or issubclass(target, _AuthorizedWrites):
            continue
        resource = GUARDED.get(target.__name__)
        if resource is None or not target.__module__.startswith("jupyterlab_server"):
            continue
        rule.target = type(f"Guarded{target.__name__}", (_AuthorizedWrites, target),
                           {"guarded_resource": resource})
        changed += 1
    return changed


def _rules(router: Any):
    for rule in getattr(router, "rules", ()):
        yield rule
        if hasattr(rule.target, "rules"):
            yield from _rules(rule.target)
