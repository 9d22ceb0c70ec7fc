"""REST for grants, owner only: `api/marimo-collab/grants` (GET, PUT, DELETE) and `.../audit`.

docs/protocol.md "Grants (REST)".
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from urllib.parse import quote

from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httputil import url_concat

from ..auth.roles import RolePolicy, is_owner
from .store import Grant, GrantError, GrantStore, ShareLink, covers, normalize_grant_path

_rechecks: set[asyncio.Task] = set()  # referenced until done (the loop keeps only weak refs)


class OwnerOnlyHandler(APIHandler):
    """Answers only the server's own user (`auth.roles.is_owner`); everyone else gets 403."""

    @property
    def app(self):
        return self.settings["marimo_collab"]

    @property
    def store(self) -> GrantStore:
        return self.app.grant_store

    def check_owner(self) -> None:
        if self.current_user is None:
            raise web.HTTPError(403, "not authenticated")
        if not is_owner(self, self.current_user, RolePolicy.from_app(self.app)):
            raise web.HTTPError(403, "only the server's owner manages grants")

    def path_argument(self) -> str | None:
        raw = self.get_argument("path", None)
        try:
            return None if raw is None else normalize_grant_path(raw)
        except GrantError as e:
            raise web.HTTPError(400, str(e)) from None

    def body(self) -> dict:
        try:
            data = json.loads(self.request.body or b"")
        except ValueError:
            raise web.HTTPError(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "the body is a JSON object")
        return data


class GrantsHandler(OwnerOnlyHandler):
    """List, create or change, and remove grants."""

    @web.authenticated
    def get(self) -> None:
        self.check_owner()
        grants = self.store.grants(self.path_argument())
        self.finish({"grants": [g.to_json() for g in grants]})

    @web.authenticated
    async def put(self) -> None:
        self.check_owner()
        try:
            grant = Grant.from_json(self.body())
        except GrantError as e:
            raise web.HTTPError(400, str(e)) from None
        previous = self.store.put(grant)
        self.log.info("marimo-collab: %s %s may %s %s", grant.kind, grant.name,
                      grant.role.wire_name, grant.path)
        self._recheck(grant.path)
        shares = self.app.hub_shares
        hub_share = (await shares.after_grant(self.store, grant.kind, grant.name)
                     if shares is not None else None)
        self.set_status(200 if previous is not None else 201)
        self.finish({"grant": grant.to_json(),
                     "previous": previous.to_json() if previous is not None else None,
                     "hub_share": hub_share})

    @web.authenticated
    async def delete(self) -> None:
        self.check_owner()
        try:
            wanted = Grant.from_json(self.body(), need_role=False)
        except GrantError as e:
            raise web.HTTPError(400, str(e)) from None
        removed = self.store.delete(wanted.path, wanted.kind, wanted.name)
        if removed is None:
            raise web.HTTPError(404, "no such grant")
        self.log.info("marimo-collab: revoked %s %s on %s", removed.kind, removed.name,
                      removed.path)
        shares = self.app.hub_shares
        hub_share = (await shares.after_revoke(self.store, removed.kind, removed.name)
                     if shares is not None else None)
        self._recheck(removed.path)
        self.finish({"removed": removed.to_json(), "hub_share": hub_share})

    def _recheck(self, path: str) -> None:
        """Re-check now every joined socket of the notebooks the grant reaches.

        Sockets not joined yet are caught by their periodic re-check.
        """
        manager = getattr(self.app, "room_manager", None)
        for room_path, room in list(getattr(manager, "rooms", {}).items()):
            if not covers(path, room_path):
                continue
            for peer in list(room.presence.peers.values()):
                watcher = getattr(peer.connection, "role_watcher", None)
                if watcher is not None:
                    task = asyncio.ensure_future(watcher.check_now())
                    _rechecks.add(task)
                    task.add_done_callback(_rechecks.discard)


class AuditHandler(OwnerOnlyHandler):
    """Who joined which notebook, and when: `GET api/marimo-collab/grants/audit?path=`."""

    @web.authenticated
    def get(self) -> None:
        self.check_owner()
        joins = self.store.joins(self.path_argument())
        self.finish({"joins": [j.to_json() for j in joins]})


class LinksHandler(OwnerOnlyHandler):
    """Share links: a JupyterHub share code plus a claim URL that turns into a grant.

    `POST {"path", "role", "expires_in"?}` -> {"link", "url"}; `GET [?path=]`; `DELETE {"id"}`.
    """

    @web.authenticated
    def get(self) -> None:
        self.check_owner()
        self.finish({"links": [k.to_json() for k in self.store.links(self.path_argument())]})

    @web.authenticated
    async def post(self) -> None:
        self.check_owner()
        body = self.body()
        try:
            probe = Grant.from_json({**body, "user": "-"})
        except GrantError as e:
            raise web.HTTPError(400, str(e)) from None
        expires_in = body.get("expires_in", 86400)
        if not isinstance(expires_in, int) or not 60 <= expires_in <= 365 * 86400:
            raise web.HTTPError(400, "`expires_in` is seconds, 60 to one year")
        if not confines_plain_shares(self.authorizer):
            raise web.HTTPError(409, "share links need HubScopeAuthorizer with access_level"
                                " 'none': whoever accepts the hub's code but not the link"
                                " would otherwise get access_level on every notebook")
        shares = self.app.hub_shares
        if shares is None:
            raise web.HTTPError(409, "share links need JupyterHub")
        try:
            code = await shares.create_code(expires_in)
        except Exception as e:  # the hub's refusal (403 without shares!server) or outage
            raise web.HTTPError(502, f"JupyterHub refused the share code: {e}") from None
        link = ShareLink(secrets.token_urlsafe(18), probe.path, probe.role,
                         time.time() + expires_in, str(code.get("id", "")))
        self.store.add_link(link)
        claim = url_path_join(self.base_url, "marimo-collab", "claim", link.id)
        url = url_concat(code["accept_url"], {"next": claim})
        # With the hub's public_url set, the hub also gives the link with its host.
        full = code.get("full_accept_url")
        self.set_status(201)
        self.finish({"link": link.to_json(), "url": url,
                     "full_url": url_concat(full, {"next": claim}) if full else None})

    @web.authenticated
    async def delete(self) -> None:
        self.check_owner()
        link_id = self.body().get("id")
        removed = self.store.delete_link(link_id) if isinstance(link_id, str) else None
        if removed is None:
            raise web.HTTPError(404, "no such link")
        if self.app.hub_shares is not None and removed.hub_code_id:
            try:
                await self.app.hub_shares.delete_code(removed.hub_code_id)
            except Exception as e:  # expired or already withdrawn on the hub: nothing to undo
                self.log.warning("marimo-collab: share code %s: %s", removed.hub_code_id, e)
        self.finish({"removed": removed.to_json()})


class ClaimHandler(JupyterHandler):
    """`GET marimo-collab/claim/<link id>`: the share link's grant, in the visitor's name.

    Reached after the hub's accept-share page; redirects to the notebook in JupyterLab.
    """

    @property
    def app(self):
        return self.settings["marimo_collab"]

    @web.authenticated
    def get(self, link_id: str) -> None:
        store: GrantStore = self.app.grant_store
        link = store.link(link_id)
        if link is None:
            raise web.HTTPError(404, "this link has expired or was withdrawn")
        user = self.current_user
        if not is_owner(self, user, RolePolicy.from_app(self.app)):
            own = next((g for g in store.grantees_of("user", user.username)
                        if g.path == link.path), None)
            if own is None or own.role < link.role:  # a link never lowers a grant
                store.put(Grant(link.path, "user", user.username, link.role))
                self.log.info("marimo-collab: %s claimed %s on %s by a link", user.username,
                              link.role.wire_name, link.path)
        target = url_path_join(self.base_url, "lab", "workspaces", quote(user.username, safe=""),
                               "tree", quote(link.path))
        self.redirect(url_concat(target, {"factory": "marimo (multiplayer)"}))


def confines_plain_shares(authorizer) -> bool:
    """Whether someone with only `access:servers` gets nothing here but their grants."""
    from ..auth.hub_authorizer import HubScopeAuthorizer

    return isinstance(authorizer, HubScopeAuthorizer) and authorizer.access_level == "none"
