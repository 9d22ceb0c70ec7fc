"""An AI agent as a visible, permissioned peer: `marimo-collab mcp` (docs/clients.md)."""
