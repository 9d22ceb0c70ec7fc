"""`marimo-collab mcp` driven by the MCP SDK's own client over stdio, against a real server.

Several people (tests/identities.py): rita may run, eddie may edit, vera may only read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from marimo_collab_ext.client import CollabClient, CollabError

from .servers import ServerProcess

pytestmark = pytest.mark.people

REPO = Path(__file__).parent.parent


def notebook(*cells: str) -> str:
    body = "".join(f"\n\n@app.cell\ndef _():\n{_indent(code)}\n    return\n" for code in cells)
    return f"import marimo\n\napp = marimo.App()\n{body}\n\nif __name__ == \"__main__\":\n" \
           "    app.run()\n"


def _indent(code: str) -> str:
    return "\n".join("    " + line for line in code.split("\n"))


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    base = tmp_path_factory.mktemp("mcp")
    root, journal = base / "root", base / "journal"
    root.mkdir()
    journal.mkdir()
    server = ServerProcess(
        root, journal, collab={"autosave_delay": 0.2},
        extra_args=["--ServerApp.identity_provider_class=tests.identities.TokenPerPerson",
                    "--ServerApp.authorizer_class=tests.identities.RightsPerPerson"]).start()
    yield server
    server.stop()


@contextlib.asynccontextmanager
async def agent(live, token: str, *args: str):
    """An MCP client session with `marimo-collab mcp` as its stdio server."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MARIMO_COLLAB_TOKEN", "JUPYTERHUB_API_TOKEN", "JUPYTER_TOKEN")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["MARIMO_COLLAB_TOKEN"] = token
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "marimo_collab_ext.cli", "mcp", "--server", live.url, *args], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments) -> str:
    """A tool's text; AssertionError when the tool answered an error."""
    result = await session.call_tool(tool, arguments)
    text = "\n".join(block.text for block in result.content)
    assert not result.is_error, text
    return text


async def refused(session: ClientSession, tool: str, **arguments) -> str:
    result = await session.call_tool(tool, arguments)
    text = "\n".join(block.text for block in result.content)
    assert result.is_error, text
    return text


def write(live, name: str, *cells: str) -> str:
    (live.root / name).write_text(notebook(*cells))
    return name


async def human(live, path: str, token: str = "rita-token") -> CollabClient:
    return await CollabClient.connect(live.url, path, token=token)


def test_agent_and_human_typing_in_one_cell_both_survive(live):
    path = write(live, "together.py", "x = 1\ny = 2")

    async def main():
        person = await human(live, path)
        try:
            async with agent(live, "rita-token", path, "--type-delay", "15") as session:
                listing = await call(session, "list_cells")
                cell_id = person.order[0]
                assert cell_id in listing and "Rita Example's agent (runner)" in listing
                agent_text = " + 40  # the agent's words, typed one at a time"
                typing = asyncio.ensure_future(call(session, "edit_cell", cell=1,
                                                    find="y = 2", text="y = 2" + agent_text))
                # The person types a character at the top of the cell for each word the agent
                # types below, so every word of the agent's lands after a change of theirs.
                typed = "# the person's note\n"
                for index, char in enumerate(typed):
                    if not typing.done():
                        with contextlib.suppress(asyncio.TimeoutError):
                            await person.next_event(lambda e: e.get("type") == "change"
                                                    and e.get("peer_id") != person.peer_id, 5)
                    person.edit(cell_id, {"from": index, "insert": char})
                answer = await typing
                await person.flush()
                # Both edits are in, whole, in the person's copy, the agent's and a late joiner's.
                expected = typed + "x = 1\ny = 2" + agent_text
                for _ in range(100):
                    if person.text(cell_id) == expected:
                        break
                    await asyncio.sleep(0.05)
                assert person.text(cell_id) == expected
                assert agent_text in answer
                late = await human(live, path, "vera-token")
                assert late.text(cell_id) == expected
                await late.close()
                assert expected in await call(session, "read_cell", cell=cell_id)
                # Every push of both is in the cell's history, under rita (the agent's user).
                edits = (await call(session, "history", cell=1, limit=1000)).splitlines()
                assert len(edits) >= 2 and all(" rita edited #1 " + cell_id in e for e in edits)
        finally:
            await person.close()

    asyncio.run(main())


def test_agent_is_a_visible_peer_with_its_cursor_where_it_types(live):
    path = write(live, "visible.py", "a = 1")

    async def main():
        person = await human(live, path, "vera-token")
        try:
            async with agent(live, "rita-token", path, "--type-delay", "0") as session:
                await call(session, "list_cells")  # joins
                joined = await person.next_event(
                    lambda e: e.get("type") == "presence" and e.get("event") == "join")
                peer = joined["peer"]
                # Stamped by the server: rita's username, labelled as her agent, its own colour.
                assert peer["user"]["username"] == "rita"
                assert peer["user"]["display_name"] == "Rita Example's agent"
                assert peer["user"]["agent"] is True and peer["role"] == "runner"
                await call(session, "edit_cell", cell=1, start=5, text="0")
                cursor = await person.next_event(lambda e: e.get("type") == "cursor")
                assert cursor["peer_id"] == peer["peer_id"]
                assert (cursor["document_id"], cursor["head"]) == (person.order[0], 6)
                assert person.text(person.order[0]) == "a = 10"
        finally:
            await person.close()

    asyncio.run(main())


def test_edit_forms_count_characters_and_say_what_is_wrong(live):
    path = write(live, "forms.py", "s = '😀x'\nt = s * 2")

    async def main():
        async with agent(live, "eddie-token", path, "--type-delay", "0") as session:
            # Positions count characters (the emoji is one), not UTF-16 units.
            assert "s = '😀yx'" in await call(session, "edit_cell", cell=1, start=6, text="y")
            assert "s = '😀zx'" in await call(session, "edit_cell", cell=1, start=6, end=7,
                                              text="z")
            answer = await call(session, "edit_cell", cell=1, find="s * 2", text="s * 3")
            assert answer.endswith("s = '😀zx'\nt = s * 3")
            whole = await call(session, "edit_cell", cell=1, text="s = '😀'\nt = s")
            assert whole.endswith("\ns = '😀'\nt = s")
            assert "occurs 0 times" in await refused(session, "edit_cell", cell=1, find="nope",
                                                     text="x")
            assert "occurs 2 times" in await refused(session, "edit_cell", cell=1, find="s",
                                                     text="x")
            assert "start <= end" in await refused(session, "edit_cell", cell=1, start=99,
                                                   text="x")
            assert "no cell #5" in await refused(session, "read_cell", cell=5)
            assert "runner" in await refused(session, "run_cells", cells=[1])  # eddie edits

    asyncio.run(main())


def test_agent_adds_runs_and_reads_outputs(live):
    path = write(live, "compute.py", "import time")

    async def main():
        async with agent(live, "rita-token", path, "--type-delay", "0") as session:
            added = await call(session, "add_cell",
                               code="print('hello from the agent')\nanswer = 6 * 7\nanswer")
            cell_id = added.split()[2]
            ran = await call(session, "run_cells", cells=[cell_id])
            assert "hello from the agent" in ran and "42" in ran, ran
            failing = (await call(session, "add_cell", code="1 / 0")).split()[2]
            await call(session, "run_cells", cells=[failing])
            outputs = await call(session, "get_outputs", cells=[cell_id, failing])
            assert "42" in outputs
            assert "ZeroDivisionError" in outputs and "division by zero" in outputs
            assert "Traceback" in outputs  # marimo's traceback, as text
            listing = await call(session, "list_cells")
            assert "#2 " + cell_id in listing and "#3 " + failing in listing
            await call(session, "move_cell", cell=failing, after="start")
            await call(session, "delete_cell", cell=1)
            assert failing not in await call(session, "list_cells")

    asyncio.run(main())


def test_wait_for_idle_waits_for_a_run_someone_else_started(live):
    path = write(live, "slow.py", "import time\ntime.sleep(2)\ndone = 'slept'\ndone")

    async def main():
        person = await human(live, path)
        try:
            async with agent(live, "rita-token", path, "--role", "viewer") as session:
                await call(session, "list_cells")
                await person.run(list(person.order))
                answer = await call(session, "wait_for_idle", timeout=120)
                assert answer.startswith("idle"), answer
                assert "slept" in await call(session, "get_outputs")
        finally:
            await person.close()

    asyncio.run(main())


def test_viewer_agent_edits_are_refused_with_a_clear_error(live):
    path = write(live, "readonly.py", "z = 3")

    async def main():
        person = await human(live, path)
        try:
            # vera's token only reads: the server says viewer, the agent refuses before sending.
            async with agent(live, "vera-token", path, "--type-delay", "0") as session:
                assert "z = 3" in await call(session, "read_cell", cell=1)
                assert await call(session, "history") == "no edits in this session yet"
                error = await refused(session, "edit_cell", cell=1, text="z = 4")
                assert "viewer" in error and "editor" in error and "Nothing was sent" in error
                assert "runner" in await refused(session, "run_cells", cells=[1])
                assert "viewer" in await refused(session, "add_cell", code="w = 1")
            # rita may run, but `--role viewer` narrows her agent, and the room shows it so.
            async with agent(live, "rita-token", path, "--role", "viewer") as session:
                await call(session, "list_cells")
                joined = await person.next_event(
                    lambda e: e.get("type") == "presence" and e.get("event") == "join")
                assert joined["peer"]["role"] == "viewer"
                error = await refused(session, "delete_cell", cell=1)
                assert "viewer" in error and "--role" in error
            assert person.text(person.order[0]) == "z = 3" and len(person.order) == 1
        finally:
            await person.close()

    asyncio.run(main())


def test_join_may_ask_for_a_lower_role_and_the_server_holds_it(live):
    """A peer that joined as a viewer is refused edits by the server itself."""
    path = write(live, "narrowed.py", "q = 1")

    async def main():
        narrowed = await CollabClient.connect(live.url, path, token="rita-token",
                                              join_fields={"role": "viewer"})
        try:
            assert narrowed.join_response["self"]["role"] == "viewer"
            cell_id = narrowed.order[0]
            with pytest.raises(CollabError) as refused_change:
                await narrowed.request({"type": "change", "document_id": cell_id, "version": 0,
                                        "updates": [{"clientID": "x", "changes": [5, [0, "0"]]}]})
            assert refused_change.value.code == "forbidden"
            with pytest.raises(CollabError) as refused_run:
                await narrowed.run([cell_id])
            assert refused_run.value.code == "forbidden"
        finally:
            await narrowed.close()
        # Asking for more than the token gives does not raise it; a made-up role is refused.
        raised = await CollabClient.connect(live.url, path, token="vera-token",
                                            join_fields={"role": "runner"})
        assert raised.join_response["self"]["role"] == "viewer"
        await raised.close()
        with pytest.raises(CollabError) as bad:
            await CollabClient.connect(live.url, path, token="rita-token",
                                       join_fields={"role": "owner"})
        assert bad.value.code == "bad_request"

    asyncio.run(main())


def test_list_notebooks_finds_marimo_notebooks_only(live):
    write(live, "listed.py", "n = 1")
    (live.root / "plain_script.py").write_text("print('not a notebook')\n")
    (live.root / "sub").mkdir(exist_ok=True)
    (live.root / "sub" / "nested.py").write_text(notebook("m = 2"))

    async def main():
        async with agent(live, "vera-token") as session:
            listing = (await call(session, "list_notebooks")).splitlines()
            assert "listed.py" in listing and "sub/nested.py" in listing
            assert "plain_script.py" not in listing
            assert await call(session, "list_notebooks", folder="sub") == "sub/nested.py"
            # No notebook on the command line: tools name one, or say that they must.
            assert "name a notebook" in await refused(session, "list_cells")
            assert "m = 2" in await call(session, "read_cell", cell=1, notebook="sub/nested.py")

    asyncio.run(main())


def test_in_suggest_mode_nothing_changes_until_a_person_accepts(live):
    path = write(live, "suggested.py", "a = 1\nb = 2")

    async def main():
        person = await human(live, path)  # rita, who may accept
        try:
            async with agent(live, "eddie-token", path, "--suggest", "--role", "editor",
                             "--type-delay", "0") as session:
                cell_id = person.order[0]
                answer = await call(session, "edit_cell", cell=1, find="b = 2", text="b = 3")
                assert "nothing changes until an editor accepts" in answer
                made = await person.next_event(lambda e: e.get("type") == "suggestion")
                suggestion = made["suggestion"]
                assert made["event"] == "created" and suggestion["insert"] == "3"
                assert suggestion["author"]["agent"] is True
                assert suggestion["replaced"] == "2" and suggestion["cell_id"] == cell_id
                added = await call(session, "add_cell", code="c = a + b")
                assert "added only when an editor accepts" in added
                new = (await person.next_event(lambda e: e.get("type") == "suggestion"))[
                    "suggestion"]
                assert "refused" in await refused(session, "delete_cell", cell=1)
                listing = await call(session, "list_cells")
                assert f"pending suggestion {suggestion['id']}" in listing
                assert f"pending suggestion {new['id']}" in listing
                # Nothing changed: not in the agent's view, nor in a late joiner's.
                assert (await call(session, "read_cell", cell=1)).endswith("a = 1\nb = 2")
                late = await human(live, path, "vera-token")
                assert late.text(cell_id) == "a = 1\nb = 2" and len(late.order) == 1
                assert {s["id"] for s in late.join_response["suggestions"]} == {
                    suggestion["id"], new["id"]}
                await late.close()
                # A person accepts the edit and rejects the new cell.
                await person.request({"type": "accept_suggestion",
                                      "suggestion_id": suggestion["id"]})
                await person.request({"type": "reject_suggestion", "suggestion_id": new["id"]})
                assert person.text(cell_id) == "a = 1\nb = 3" and len(person.order) == 1
                for _ in range(100):
                    if (await call(session, "read_cell", cell=1)).endswith("b = 3"):
                        break
                    await asyncio.sleep(0.05)
                assert (await call(session, "read_cell", cell=1)).endswith("a = 1\nb = 3")
                listing = await call(session, "list_cells")
                assert f"suggestion {suggestion['id']} was accepted" in listing
                assert f"suggestion {new['id']} was rejected" in listing
                # The history says rita made it, suggested by eddie (the agent's user).
                history = await person.request({"type": "cell_history", "cell_id": cell_id})
                assert [(v["username"], v["suggested_by"]) for v in history["versions"]] == [
                    ("rita", "eddie")]
                told = await call(session, "cell_history", cell=1)
                assert "rita (suggested by eddie):" in told and "+b = 3" in told
                assert "rita | b = 3" in told and "(older) | a = 1" in told
        finally:
            await person.close()

    asyncio.run(main())
