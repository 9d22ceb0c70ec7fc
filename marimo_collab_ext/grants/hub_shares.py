"""Let a grantee reach the server: a hub share (`access:servers` on this server) per grantee.

Made with the server's own API token ($JUPYTERHUB_API_TOKEN), which needs `shares!server`,
`read:users:name` and `read:groups:name` (c.Spawner.server_token_scopes, docs/jupyterhub.md).
Only shares made here are removed here, when the grantee's last grant goes.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .store import GrantStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubShares:
    """The hub's sharing API for this one server (owner/name)."""

    api_url: str
    token: str
    owner: str
    server_name: str = ""

    @classmethod
    def from_environment(cls) -> HubShares | None:
        """From the variables JupyterHub gives a single-user server; None outside a hub."""
        env = os.environ
        if not (env.get("JUPYTERHUB_API_URL") and env.get("JUPYTERHUB_API_TOKEN")
                and env.get("JUPYTERHUB_USER")):
            return None
        return cls(env["JUPYTERHUB_API_URL"].rstrip("/"), env["JUPYTERHUB_API_TOKEN"],
                   env["JUPYTERHUB_USER"], env.get("JUPYTERHUB_SERVER_NAME", ""))

    @property
    def access_scope(self) -> str:
        return f"access:servers!server={self.owner}/{self.server_name}"

    async def after_grant(self, store: GrantStore, kind: str, name: str) -> dict:
        """Share the server with the grantee unless a share already lets them in.

        Returns what happened, for the REST answer: {"status": "created" | "exists" | "failed"}.
        """
        try:
            existing = await self._share_of(kind, name)
            if existing is not None and self.access_scope in existing.get("scopes", ()):
                return {"status": "exists"}
            await self._call("POST", {kind: name, "scopes": [self.access_scope]})
        except (HTTPClientError, OSError, ValueError) as e:
            reason = _reason(e)
            log.warning("marimo-collab: could not share with %s %s: %s", kind, name, reason)
            return {"status": "failed", "reason": reason}
        store.mark_hub_share(kind, name, True)
        return {"status": "created"}

    async def after_revoke(self, store: GrantStore, kind: str, name: str) -> dict | None:
        """Remove the share made for this grantee once they have no grant left."""
        if store.grantees_of(kind, name) or not store.made_hub_share(kind, name):
            return None
        try:
            await self._call("PATCH", {kind: name, "scopes": [self.access_scope]})
        except (HTTPClientError, OSError, ValueError) as e:
            reason = _reason(e)
            log.warning("marimo-collab: could not unshare with %s %s: %s", kind, name, reason)
            return {"status": "failed", "reason": reason}
        store.mark_hub_share(kind, name, False)
        return {"status": "removed"}

    async def create_code(self, expires_in: int) -> dict:
        """A hub share code for this server (access only): the hub's model, with `code` and
        `accept_url`. Raises HTTPClientError / OSError when the hub refuses or is down."""
        return await self._call("POST", {"scopes": [self.access_scope],
                                         "expires_in": expires_in}, kind="share-codes")

    async def delete_code(self, code_id: str) -> None:
        """Withdraw a share code (already accepted shares stay; remove their grants)."""
        await self._call("DELETE", None, kind="share-codes", query=f"?id={quote(code_id)}")

    async def _share_of(self, kind: str, name: str) -> dict | None:
        reply = await self._call("GET")
        for share in reply.get("items", []):
            who = share.get(kind) or {}
            if share.get("kind") == kind and who.get("name") == name:
                return share
        return None

    async def _call(self, method: str, body: dict | None = None, *, kind: str = "shares",
                    query: str = "") -> dict:
        url = f"{self.api_url}/{kind}/{quote(self.owner)}/{quote(self.server_name)}{query}"
        request = HTTPRequest(
            url, method=method, body=None if body is None else json.dumps(body),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            request_timeout=20)
        response = await AsyncHTTPClient().fetch(request)
        return json.loads(response.body or b"{}") if response.body else {}


def _reason(error: Exception) -> str:
    if isinstance(error, HTTPClientError) and error.response is not None:
        try:
            return f"{error.code}: {json.loads(error.response.body)['message']}"
        except (ValueError, KeyError, TypeError):
            return str(error)
    return f"{type(error).__name__}: {error}"
