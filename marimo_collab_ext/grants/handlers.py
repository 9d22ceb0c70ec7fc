"""REST for grants, owner only: `api/marimo-collab/grants` (GET, PUT, DELETE) and `.../audit`.

docs/protocol.md "Grants (REST)".
"""

from __future__ import annotations

import asyncio
import json

from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..auth.roles import RolePolicy, is_owner
from .store import Grant, GrantError, GrantStore, covers, normalize_grant_path

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
