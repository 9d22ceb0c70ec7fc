"""HTTP handlers for the output frame: marimo's page and its assets, public and sandboxed.

Nothing here is secret (marimo's compiled frontend and our bridge script), so no login is
asked: the frame is an opaque origin and sends no credentials anyway. What the frame shows
reaches it only from the page, by postMessage.
"""

from __future__ import annotations

import asyncio

from tornado import web

from .assets import FrontendUnavailable, MarimoFrontend, locate_frontend
from .page import CONTENT_SECURITY_POLICY, output_frame_page

_located: dict[str, asyncio.Future[MarimoFrontend]] = {}


async def frontend_for(python: str) -> MarimoFrontend:
    """The kernel environment's frontend, located once per Python executable."""
    if python not in _located:
        loop = asyncio.get_running_loop()
        _located[python] = loop.run_in_executor(None, locate_frontend, python)
    try:
        return await asyncio.shield(_located[python])
    except FrontendUnavailable:
        _located.pop(python, None)  # the environment may be fixed; ask again next time
        raise


class OutputFramePageHandler(web.RequestHandler):
    """GET {base}marimo-collab/frontend/?theme=light|dark"""

    async def get(self) -> None:
        python = self.settings["marimo_collab"].kernel_python
        try:
            frontend = await frontend_for(python)
        except FrontendUnavailable as e:
            self.set_status(503)  # the reason, in the body: the page's own log shows it
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(f"marimo's frontend for outputs is not available: {e}")
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Marimo-Version", frontend.version)
        theme = self.get_argument("theme", "light")
        self.finish(output_frame_page(frontend.index_html, frontend.version, theme))


class OutputFrameAssetHandler(web.StaticFileHandler):
    """marimo's compiled assets; the frame's opaque origin loads them as CORS requests."""

    async def get(self, path: str, include_body: bool = True) -> None:
        frontend = await frontend_for(self.settings["marimo_collab"].kernel_python)
        self.root = str(frontend.static_dir)
        await super().get(path, include_body)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Access-Control-Allow-Origin", "*")
        if path.startswith("assets/"):  # content-hashed names
            self.set_header("Cache-Control", "public, max-age=31536000, immutable")
