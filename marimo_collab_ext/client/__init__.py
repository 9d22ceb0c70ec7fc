"""An asyncio client of the collaboration protocol (docs/protocol.md), for scripts and editors."""

from .client import CollabClient, CollabError, ws_url

__all__ = ["CollabClient", "CollabError", "ws_url"]
