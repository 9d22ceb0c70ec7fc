"""`marimo-collab mcp`: a Model Context Protocol server (stdio) whose tools act in live notebooks.

The agent is one more peer of each notebook it touches; its role is the token's, narrowed by
`--role`, and a tool beyond that role is refused before anything is sent (the server would
refuse it too). Setup: docs/clients.md, "An AI agent in the notebook (MCP)".
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from ..auth.roles import Role
from ..cli.connection import ConnectError
from ..client import CollabError
from .notebook import AgentError, AgentNotebook, log
from .typist import CellGone

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError("`marimo-collab mcp` needs the MCP SDK: pip install"
                      " 'marimo-collab-ext[agent]'") from exc

# The least role each tool needs (docs/protocol.md "Roles").
NEEDS = {  # suggesting needs the editor role too
    "edit_cell": Role.EDITOR, "add_cell": Role.EDITOR, "delete_cell": Role.EDITOR,
    "move_cell": Role.EDITOR, "run_cells": Role.RUNNER, "set_ui_value": Role.RUNNER,
}
# list_notebooks walks folders this deep and reads at most this many .py files.
_MAX_DEPTH = 4
_MAX_FILES = 500
_MARKER = "marimo.App("

SUGGEST_NOTE = """
You only suggest: edit_cell and add_cell make suggestions that people accept or reject;
nothing you propose is in the notebook until then."""

INSTRUCTIONS = """\
You are a visible collaborator in live marimo notebooks: people see your cursor and every
character you type, and may be typing in the same cells. Read a cell right before editing it,
prefer small edits (`find` + `text`) over rewriting whole cells, and never undo others' work.
Cells are named by id or by 1-based position. marimo reruns dependent cells by itself."""


class Agent:
    """The notebooks the agent has joined, opened on first use, and the server's options."""

    def __init__(self, server: str, token: str | None, role: Role, type_delay: float,
                 default_notebook: str | None, suggest: bool = False) -> None:
        self.server = server if server.endswith("/") else server + "/"
        self.token = token
        self.role = role
        self.type_delay = type_delay
        self.default_notebook = default_notebook
        self.suggest = suggest  # edits become suggestions people accept (docs/clients.md)
        self.notebooks: dict[str, AgentNotebook] = {}
        self._opening = asyncio.Lock()

    async def notebook(self, path: str | None, tool: str) -> AgentNotebook:
        """The joined notebook at `path`; refuses `tool` beyond the agent's role there."""
        path = path or self.default_notebook
        if not path:
            raise ToolError("name a notebook (`notebook`: its path on the server;"
                            " list_notebooks shows them)")
        needed = NEEDS.get(tool, Role.VIEWER)
        if self.suggest and tool in ("delete_cell", "move_cell"):
            raise ToolError(f"refused: this agent only suggests (--suggest), and {tool} cannot"
                            " be suggested; ask a person to do it. Nothing was sent.")
        if self.role < needed:  # known before joining: send nothing
            raise ToolError(_refusal(tool, path, self.role, needed, "--role"))
        async with self._opening:
            notebook = self.notebooks.get(path)
            if notebook is None:
                try:
                    notebook = await AgentNotebook.open(self.server, path, self.token,
                                                        self.role, self.type_delay)
                except ConnectError as exc:
                    raise ToolError(str(exc)) from None
                self.notebooks[path] = notebook
                log(f"joined {path} as {notebook.role.wire_name}")
        if notebook.role < needed:
            raise ToolError(_refusal(tool, path, notebook.role, needed, "the server"))
        return notebook

    async def close(self) -> None:
        for notebook in self.notebooks.values():
            await notebook.close()
        self.notebooks.clear()

    async def list_notebooks(self, folder: str) -> list[str]:
        """marimo notebooks under `folder`, through Jupyter's contents API."""
        http = AsyncHTTPClient()
        found: list[str] = []
        budget = [_MAX_FILES]

        async def get(path: str, **query: str) -> dict:
            url = self.server + "api/contents/" + quote(path.strip("/"))
            if query:
                url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
            headers = {"Authorization": f"token {self.token}"} if self.token else {}
            response = await http.fetch(url, headers=headers, request_timeout=30)
            return json.loads(response.body)

        async def walk(path: str, depth: int) -> None:
            listing = await get(path, content="1")
            if listing.get("type") != "directory":
                raise ToolError(f"{path!r} is not a folder")
            for item in sorted(listing.get("content") or [], key=lambda i: i["path"]):
                if item["name"].startswith(".") or budget[0] <= 0:
                    continue
                if item["type"] == "directory" and depth < _MAX_DEPTH:
                    await walk(item["path"], depth + 1)
                elif item["type"] == "file" and item["name"].endswith(".py"):
                    budget[0] -= 1
                    try:
                        text = (await get(item["path"], content="1", type="file",
                                          format="text")).get("content") or ""
                    except HTTPClientError:
                        continue  # unreadable: not listed
                    if _MARKER in text:
                        found.append(item["path"])

        try:
            await walk(folder, 0)
        except HTTPClientError as exc:
            raise ToolError(f"the server's contents API answered HTTP {exc.code} for"
                            f" {folder or '/'!r}") from None
        except OSError as exc:
            raise ToolError(f"cannot reach {self.server}: {exc}") from None
        return found


def _refusal(tool: str, path: str, role: Role, needed: Role, source: str) -> str:
    return (f"refused: this agent is a {role.wire_name} in {path} (as {source} says), and"
            f" {tool} needs the {needed.wire_name} role. Nothing was sent.")


def build_server(agent: Agent) -> MCPServer:
    """The MCP server with one tool per thing the agent may do in a notebook."""
    mcp = MCPServer("marimo-collab",
                    instructions=INSTRUCTIONS + (SUGGEST_NOTE if agent.suggest else ""))

    def tool(fn):
        @functools.wraps(fn)
        async def wrapped(*args, **kwargs):
            try:
                return await fn(*args, **kwargs)
            except (AgentError, CellGone) as exc:
                raise ToolError(str(exc)) from None
            except CollabError as exc:
                raise ToolError(f"the server refused: {exc}") from None
            except (ConnectionError, asyncio.TimeoutError) as exc:
                raise ToolError(f"lost the connection to the notebook ({type(exc).__name__});"
                                " it reconnects by itself, try again") from None
        mcp.add_tool(wrapped, name=fn.__name__, description=fn.__doc__)
        return fn

    @tool
    async def list_notebooks(folder: str = "") -> str:
        """List the marimo notebooks on the server (paths relative to its root), under
        `folder` if given. Any of them can be opened by the other tools' `notebook`."""
        found = await agent.list_notebooks(folder)
        return "\n".join(found) if found else "no marimo notebooks found"

    @tool
    async def list_cells(notebook: str | None = None) -> str:
        """List a notebook's cells in order: position, id, name, run status, first line; and
        who else is in the notebook and in which cell."""
        nb = await agent.notebook(notebook, "list_cells")
        status = nb.outputs.snapshot(nb.kernel_status)["outputs"]
        me = nb.client.join_response["self"]
        lines = [f"{nb.path}: you are {me['user'].get('display_name')} ({nb.role.wire_name});"
                 f" kernel {nb.kernel_status}"]
        for cell_id in nb.client.order:
            code = nb.code(cell_id)
            first = next((line for line in code.splitlines() if line.strip()), "")
            state = (status.get(cell_id) or {}).get("status", "not run")
            lines.append(f"{nb.label(cell_id)} [{state}] ({len(code.splitlines())} lines)"
                         f" {first[:80]}")
        peers = _peers(nb)
        if peers:
            lines.append("peers: " + ", ".join(peers))
        lines.extend(_suggestions(nb))
        return "\n".join(lines)

    @tool
    async def read_cell(cell: str | int, notebook: str | None = None) -> str:
        """The current code of a cell (by id or 1-based position)."""
        nb = await agent.notebook(notebook, "read_cell")
        cell_id = nb.cell_id(cell)
        return f"{nb.label(cell_id)}\n{nb.code(cell_id)}"

    @tool
    async def edit_cell(cell: str | int, text: str, find: str | None = None,
                        start: int | None = None, end: int | None = None,
                        notebook: str | None = None) -> str:
        """Change a cell's code, typed in visibly and merged with what others type meanwhile.
        Three forms: `find` + `text` replaces the one occurrence of `find` with `text`;
        `start` (and `end`) + `text` replaces characters [start, end) (a plain insert when
        `end` is left out; positions count characters of the code read_cell returns);
        `text` alone makes it the whole code of the cell (only the differences are typed).
        Returns the cell's code after the edit."""
        nb = await agent.notebook(notebook, "edit_cell")
        cell_id = nb.cell_id(cell)
        specs = nb.edit_specs(cell_id, text, start, end, find)
        if agent.suggest:
            made = await nb.suggest_edit(cell_id, specs)
            return (f"suggested {made['id']} in {nb.label(cell_id)}: nothing changes until an"
                    " editor accepts it (you will not see it in read_cell before then)")
        await nb.edit(cell_id, specs)
        return f"{nb.label(cell_id)} now reads:\n{nb.code(cell_id)}"

    @tool
    async def add_cell(code: str = "", after: str | int | None = None, name: str = "_",
                       notebook: str | None = None) -> str:
        """Add a cell after the cell `after` (id or position; "start" for the top, default
        the end) and type `code` into it. Returns the new cell's id."""
        nb = await agent.notebook(notebook, "add_cell")
        if after == "start":
            anchor = None
        elif after is None:
            anchor = nb.client.order[-1] if nb.client.order else None
        else:
            anchor = nb.cell_id(after)
        if agent.suggest:
            made = (await nb.client.request({"type": "suggest", "kind": "cell", "after": anchor,
                                             "insert": code, "name": name or "_"}))
            return (f"suggested {made['suggestion']['id']}: a new cell, added only when an"
                    " editor accepts it")
        response = await nb.structure([{"op": "create", "after": anchor, "code": "",
                                        "name": name or "_", "config": {}}])
        cell_id = response["cell_ids"][0]
        if code:
            await nb.edit(cell_id, [{"from": 0, "insert": code}])
        return f"added {nb.label(cell_id)}"

    @tool
    async def delete_cell(cell: str | int, notebook: str | None = None) -> str:
        """Delete a cell (by id or 1-based position)."""
        nb = await agent.notebook(notebook, "delete_cell")
        cell_id = nb.cell_id(cell)
        label = nb.label(cell_id)
        await nb.structure([{"op": "delete", "cell_id": cell_id}])
        return f"deleted {label}"

    @tool
    async def move_cell(cell: str | int, after: str | int, notebook: str | None = None) -> str:
        """Move a cell to just after the cell `after` ("start" for the top)."""
        nb = await agent.notebook(notebook, "move_cell")
        cell_id = nb.cell_id(cell)
        anchor = None if after == "start" else nb.cell_id(after)
        await nb.structure([{"op": "move", "cell_id": cell_id, "after": anchor}])
        return f"moved to {nb.label(cell_id)}"

    @tool
    async def run_cells(cells: list[str | int], wait: bool = True, timeout: float = 120,
                        notebook: str | None = None) -> str:
        """Run cells (ids or positions) on the notebook's shared kernel, as everyone sees it;
        marimo reruns their dependents. With `wait`, returns their outputs once the kernel
        is idle again (at most `timeout` seconds)."""
        nb = await agent.notebook(notebook, "run_cells")
        cell_ids = [nb.cell_id(c) for c in cells]
        await nb.client.flush()  # the run takes the server's code: send ours first
        await nb.client.run(cell_ids)
        if not wait:
            return "queued: " + ", ".join(nb.label(c) for c in cell_ids)
        if not await nb.wait_until(nb.settled, timeout):
            return (f"still running after {timeout:g} s (wait_for_idle waits longer)\n\n"
                    + nb.cell_outputs(cell_ids))
        return nb.cell_outputs(cell_ids)

    @tool
    async def get_outputs(cells: list[str | int] | None = None,
                          notebook: str | None = None) -> str:
        """The outputs of cells (all when `cells` is left out) as text: console output,
        the cell's output (HTML as text, images and widgets named), errors with tracebacks,
        and each cell's status (idle, queued, running, stale)."""
        nb = await agent.notebook(notebook, "get_outputs")
        cell_ids = [nb.cell_id(c) for c in cells] if cells else list(nb.client.order)
        text = nb.cell_outputs(cell_ids)
        elements = nb.ui_elements()
        if elements:
            text += "\n\nUI elements (set_ui_value):\n" + "\n".join(
                f"  {oid} {tag or '?'} = {json.dumps(value)[:200]}"
                for oid, (tag, value) in elements.items())
        return text

    @tool
    async def wait_for_idle(timeout: float = 120, notebook: str | None = None) -> str:
        """Wait until no cell is queued or running (whoever started them)."""
        nb = await agent.notebook(notebook, "wait_for_idle")
        if await nb.wait_until(nb.settled, timeout):
            return f"idle (kernel {nb.kernel_status})"
        busy = [nb.label(c) for c, e in nb.outputs.snapshot("")["outputs"].items()
                if e["status"] in ("queued", "running") and c in nb.client.cells]
        return f"still busy after {timeout:g} s: kernel {nb.kernel_status}; " + \
            (", ".join(busy) or "no cell running")

    @tool
    async def history(cell: str | int | None = None, limit: int = 50,
                      notebook: str | None = None) -> str:
        """Who edited the notebook's cells (or one cell) in this session, and when: the newest
        `limit` edits, oldest first. Edits by agents carry their user's name."""
        nb = await agent.notebook(notebook, "history")
        request: dict = {"type": "history", "limit": max(1, limit)}
        if cell is not None:
            request["cell_id"] = nb.cell_id(cell)
        records = (await nb.client.request(request))["history"]
        lines = []
        for record in records:
            cell_id = record["cell_id"]
            where = nb.label(cell_id) if cell_id in nb.client.cells else f"{cell_id} (deleted)"
            who = record["username"] or "the file on disk"
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["at"]))
            lines.append(f"{when} {who} edited {where} (version {record['version']})")
        return "\n".join(lines) or "no edits in this session yet"

    @tool
    async def cell_history(cell: str | int, limit: int = 20,
                           notebook: str | None = None) -> str:
        """A cell's recent versions, newest last: who made each change (and whose suggestion
        it was), when, and its diff; then who last wrote each line of the cell now."""
        nb = await agent.notebook(notebook, "cell_history")
        cell_id = nb.cell_id(cell)
        answer = await nb.client.request({"type": "cell_history", "cell_id": cell_id,
                                          "limit": max(1, limit)})
        parts = []
        for v in answer["versions"]:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v["at"]))
            by = f" (suggested by {v['suggested_by']})" if v["suggested_by"] else ""
            parts.append(f"v{v['to_version']} {when} {v['username'] or 'the file on disk'}"
                         f"{by}:\n{v['diff']}")
        lines = (await nb.client.request({"type": "blame", "cell_id": cell_id}))["lines"]
        code = nb.code(cell_id).split("\n")
        parts.append("who wrote each line now:\n" + "\n".join(
            f"{(line or {}).get('username') or '(older)':>12} | {text}"
            for line, text in zip(lines, code, strict=False)))
        return f"{nb.label(cell_id)}\n\n" + "\n\n".join(parts)

    @tool
    async def set_ui_value(object_id: str, value: Any, wait: bool = True, timeout: float = 120,
                           notebook: str | None = None) -> str:
        """Set a UI element's value (a slider, a text box...) as if a person changed it;
        cells that use it rerun. Ids are listed by get_outputs."""
        nb = await agent.notebook(notebook, "set_ui_value")
        await nb.client.set_ui_value(object_id, value)
        if wait and not await nb.wait_until(nb.settled, timeout):
            return f"set; reruns still going after {timeout:g} s"
        return f"set {object_id} = {json.dumps(value)[:200]}"

    return mcp


def _peers(nb: AgentNotebook) -> list[str]:
    peers = []
    for peer in nb.peers.values():
        user = peer.get("user") or {}
        cursor = peer.get("cursor") or {}
        where = cursor.get("document_id")
        peers.append(f"{user.get('display_name') or user.get('username')} ({peer.get('role')})"
                     + (f" in {where}" if where else ""))
    return peers


def _suggestions(nb: AgentNotebook) -> list[str]:
    lines = []
    for s in nb.suggestions.values():
        where = (nb.label(s["cell_id"]) if s.get("cell_id") in nb.client.cells
                 else "a new cell")
        who = s["author"].get("display_name") or s["author"].get("username")
        lines.append(f"pending suggestion {s['id']} by {who} for {where}: {s['insert'][:80]!r}")
    lines.extend(f"suggestion {sid} was {what}" for sid, what in nb.resolved.items())
    return lines


async def serve(agent: Agent) -> None:
    """Serve MCP on stdin/stdout until the client closes it."""
    try:
        await build_server(agent).run_stdio_async()
    finally:
        await agent.close()
