"""FileMirror against a real server: a local file and a browser-like peer edit the same session."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from marimo_collab_ext.cli.connection import KeepAlive
from marimo_collab_ext.client.mirror import FileMirror, MirrorError
from marimo_collab_ext.persistence.notebook_file import parse_notebook

FAST = {"poll_interval": 0.05, "debounce": 0.05}


async def until(predicate, timeout: float = 10, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def cells(path: Path) -> list[str]:
    return [cell.code for cell in parse_notebook(path.read_text()).cells]


@contextlib.asynccontextmanager
async def mirrored(connect, path: Path, **kwargs):
    """A mirror client on the example notebook, running, with its log lines collected."""
    client = await connect()
    lines: list[str] = []
    mirror = FileMirror(client, path, log=lines.append, **{**FAST, **kwargs})
    await mirror.start()
    task = asyncio.ensure_future(mirror.run())
    mirror.lines = lines
    try:
        yield client, mirror
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def local_edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in the local file"
    path.write_text(text.replace(old, new, 1))


async def test_missing_file_is_created_from_the_session(connect, tmp_path):
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (client, _mirror):
        assert cells(path) == [client.text(cid) for cid in client.order]


async def test_local_save_reaches_another_peer(connect, tmp_path):
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (client, _mirror):
        browser = await connect()
        local_edit(path, "import marimo as mo", "import marimo as mo\nimport math")
        first = browser.order[0]
        await until(lambda: browser.text(first) == "import marimo as mo\nimport math",
                    what="the local edit in the browser")
        await client.flush()


async def test_peer_edit_rewrites_the_local_file(connect, tmp_path):
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (_client, mirror):
        browser = await connect()
        cell = browser.order[3]
        browser.edit(cell, {"from": 0, "insert": "# from the browser\n"})
        await browser.flush()
        await until(lambda: cells(path)[3].startswith("# from the browser\n"),
                    what="the browser's edit in the file")
        writes = mirror.writes
        await asyncio.sleep(0.5)
        assert mirror.writes == writes  # its own write is not taken for a local edit
        assert mirror.sends == 0


async def test_concurrent_edits_in_different_cells_are_both_kept(connect, tmp_path):
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (client, _mirror):
        browser = await connect()
        a, b = browser.order[0], browser.order[5]
        # Same moment: the user saves cell A while a peer types in cell B.
        local_edit(path, "import marimo as mo", "import marimo as mo  # local")
        browser.edit(b, {"from": 0, "insert": "# remote\n"})
        await browser.flush()

        def both(texts: list[str]) -> bool:
            return texts[0].endswith("# local") and texts[5].startswith("# remote\n")

        await until(lambda: both(cells(path)), what="both edits in the file")
        await until(lambda: both([browser.text(c) for c in browser.order]),
                    what="both edits in the session")
        await client.flush()
        assert browser.text(a) == "import marimo as mo  # local"


async def test_concurrent_edits_in_one_cell_at_different_places_are_both_kept(connect, tmp_path):
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (client, mirror):
        browser = await connect()
        cell = browser.order[3]
        code = browser.text(cell)
        assert code.startswith("squares = ") and code.endswith("squares")
        # Pause the mirror's view of the session so both edits are really concurrent.
        async with mirror._lock:
            browser.edit(cell, {"from": len(code), "insert": "  # remote end"})
            await browser.flush()
            await until(lambda: client.text(cell).endswith("# remote end"), what="broadcast")
            local_edit(path, "squares = [", "squares = [0] + [")
        expected_start, expected_end = "squares = [0] + [", "squares  # remote end"

        def merged(text: str) -> bool:
            return text.startswith(expected_start) and text.endswith(expected_end)

        await until(lambda: merged(browser.text(cell)), what="the merge in the session")
        await until(lambda: merged(cells(path)[3]), what="the merge in the file")
        await client.flush()
        assert browser.text(cell) == client.text(cell)


async def test_unsent_local_edit_is_not_clobbered_by_a_remote_rewrite(connect, tmp_path):
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (_client, mirror):
        browser = await connect()
        cell = browser.order[5]
        async with mirror._lock:  # the file changes before the mirror has read it
            local_edit(path, "import marimo as mo", "import marimo as mo  # mine")
            browser.edit(cell, {"from": 0, "insert": "# theirs\n"})
            await browser.flush()
        await until(lambda: "# theirs" in path.read_text(), what="the remote edit")
        assert "import marimo as mo  # mine" in path.read_text()
        await until(lambda: browser.text(browser.order[0]).endswith("# mine"),
                    what="the local edit in the session")


async def test_local_cell_add_and_delete_become_structure_ops(connect, tmp_path):
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (client, mirror):
        browser = await connect()
        gone, before = browser.order[5], browser.order[1]
        text = path.read_text()
        # Delete the last cell, add one after the first.
        last = text.rindex("@app.cell\ndef _(squares):")
        end = text.index("if __name__")
        text = text[:last] + text[end:]
        first_end = text.index("@app.cell", text.index("import marimo as mo"))
        text = (text[:first_end] + "@app.cell\ndef _():\n    added = 42\n    return\n\n\n"
                + text[first_end:])
        path.write_text(text)
        await until(lambda: gone not in browser.cells and len(browser.order) == 6,
                    what="the delete and the create in the session")
        created = browser.order[1]
        assert browser.text(created) == "added = 42"
        assert browser.order[2] == before
        assert any("create" in line and "delete" in line for line in mirror.lines)
        # Peers' structure ops come back into the file too.
        await browser.cells_ops([{"op": "move", "cell_id": created, "after": None}])
        await until(lambda: cells(path)[0] == "added = 42", what="the peer's move in the file")
        await client.flush()


async def test_unparsable_local_file_is_neither_sent_nor_overwritten(connect, tmp_path):
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (_client, mirror):
        browser = await connect()
        broken = "this is not a notebook\n"
        path.write_text(broken)
        await until(lambda: any("not sent" in line for line in mirror.lines), what="warning")
        browser.edit(browser.order[0], {"from": 0, "insert": "# peer\n"})
        await browser.flush()
        await asyncio.sleep(0.5)
        assert path.read_text() == broken
        assert len(browser.order) == 6


async def test_an_editor_caught_mid_write_deletes_nothing(connect, tmp_path):
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (client, mirror):
        browser = await connect()
        ids = list(browser.order)
        text = path.read_text()
        path.write_text("")  # truncated, then written a moment later
        await asyncio.sleep(0.1)
        cut = text.index("@app.cell", text.index("slider = "))
        path.write_text(text[:cut])  # half of it, which parses as fewer cells
        await asyncio.sleep(0.1)
        path.write_text(text.replace("import marimo as mo", "import marimo as mo  # whole"))
        await until(lambda: browser.text(ids[0]).endswith("# whole"), what="the whole save")
        await asyncio.sleep(0.3)
        assert browser.order == ids
        await client.flush()


async def test_a_file_left_empty_is_written_again(connect, tmp_path):
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (client, mirror):
        browser = await connect()
        ids = list(browser.order)
        path.write_text("")
        await until(lambda: any("is empty" in line for line in mirror.lines), what="the note")
        await until(lambda: len(cells(path)) == 6, what="the file written again")
        assert browser.order == ids


async def test_existing_different_file_is_kept_aside_and_replaced(connect, tmp_path):
    path = tmp_path / "local.py"
    old = "import marimo\napp = marimo.App()\n\n\n@app.cell\ndef _():\n    x = 1\n    return\n"
    path.write_text(old)
    async with mirrored(connect, path) as (client, _mirror):
        assert (tmp_path / "local.py.orig").read_text() == old
        assert cells(path) == [client.text(cid) for cid in client.order]


async def test_initial_local_sends_the_file_into_the_session(connect, tmp_path):
    path = tmp_path / "local.py"
    path.write_text((Path(__file__).parent.parent / "examples" / "demo.py").read_text()
                    .replace("import marimo as mo", "import marimo as mo  # from disk"))
    async with mirrored(connect, path, initial="local") as (client, _mirror):
        browser = await connect()
        await until(lambda: browser.text(browser.order[0]).endswith("# from disk"),
                    what="the local file in the session")
        await client.flush()


async def test_not_a_notebook_at_start_is_refused(connect, tmp_path):
    path = tmp_path / "local.py"
    path.write_text("print('hello')\n")
    client = await connect()
    with pytest.raises(MirrorError):
        await FileMirror(client, path, log=lambda _line: None).start()
    assert path.read_text() == "print('hello')\n"


async def test_mirror_survives_a_dropped_connection(connect, tmp_path):
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (client, mirror):
        lines: list[str] = []

        def lost() -> None:
            mirror.connected = False

        keep = KeepAlive(client, lines.append, on_lost=lost, on_rejoined=mirror.rejoined)
        reconnect, attempts = client.reconnect, []

        async def flaky_reconnect():
            attempts.append(1)
            if len(attempts) == 1:
                raise OSError("network unreachable")  # stays offline for one backoff step
            return await reconnect()

        client.reconnect = flaky_reconnect
        keep.start()
        try:
            browser = await connect()
            await client.ws.close()  # the network goes away
            await until(lambda: not mirror.connected, what="the drop")
            local_edit(path, "import marimo as mo", "import marimo as mo  # offline")
            await until(lambda: "reconnected, caught up" in lines, what="the reconnect")
            assert any(line.startswith("reconnect failed") for line in lines)
            await until(lambda: browser.text(browser.order[0]).endswith("# offline"),
                        what="the offline save in the session")
            browser.edit(browser.order[4], {"from": 0, "insert": "# after\n"})
            await browser.flush()
            await until(lambda: cells(path)[4].startswith("# after\n"), what="later edits")
        finally:
            await keep.stop()


# ---- an editor saving a buffer it loaded before the mirror's last write ----------------------


async def test_stale_editor_save_keeps_the_peers_change(connect, tmp_path):
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (client, mirror):
        browser = await connect()
        loaded = path.read_text()  # the editor's buffer
        browser.edit(browser.order[3], {"from": 0, "insert": "# peer\n"})
        await browser.flush()
        await until(lambda: "# peer" in path.read_text(), what="the peer's edit in the file")
        # The user never reloaded, edits another cell and overwrites the file.
        path.write_text(loaded.replace("import marimo as mo", "import marimo as mo  # me"))

        def both(texts: list[str]) -> bool:
            return texts[0].endswith("# me") and texts[3].startswith("# peer\n")

        await until(lambda: both([browser.text(c) for c in browser.order]), what="session")
        await until(lambda: both(cells(path)), what="the file")
        assert any("older version" in line for line in mirror.lines)
        await client.flush()


async def test_stale_editor_save_in_the_same_cell_merges(connect, tmp_path):
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (client, _mirror):
        browser = await connect()
        cell = browser.order[3]
        loaded = path.read_text()
        code = browser.text(cell)
        browser.edit(cell, {"from": len(code), "insert": "  # peer"})
        await browser.flush()
        await until(lambda: cells(path)[3].endswith("# peer"), what="the peer's edit in the file")
        path.write_text(loaded.replace("squares = [", "squares = [0] + ["))

        def merged(text: str) -> bool:
            return text.startswith("squares = [0] + [") and text.endswith("squares  # peer")

        await until(lambda: merged(browser.text(cell)), what="the merge in the session")
        await until(lambda: merged(cells(path)[3]), what="the merge in the file")
        await client.flush()


async def test_deliberate_revert_of_a_peers_change_goes_through_the_second_time(connect,
                                                                              tmp_path):
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (client, mirror):
        browser = await connect()
        cell = browser.order[3]
        before = path.read_text()
        browser.edit(cell, {"from": 0, "insert": "# peer\n"})
        await browser.flush()
        await until(lambda: "# peer" in path.read_text(), what="the peer's edit in the file")
        path.write_text(before)  # looks exactly like a stale buffer: kept once
        await until(lambda: any("save again" in line for line in mirror.lines), what="note")
        await until(lambda: "# peer" in path.read_text(), what="the file restored")
        path.write_text(before)  # the user means it
        await until(lambda: not browser.text(cell).startswith("# peer"), what="the revert")
        await client.flush()


async def test_stale_editor_save_keeps_a_cell_a_peer_added(connect, tmp_path):
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (client, mirror):
        browser = await connect()
        loaded = path.read_text()
        browser.edit(browser.order[2], {"from": 0, "insert": "# peer\n"})
        await browser.flush()
        response = await browser.cells_ops([{"op": "create", "after": browser.order[0],
                                             "code": "peer_cell = 1"}])
        created = response["cell_ids"][0]
        await until(lambda: "peer_cell = 1" in path.read_text(), what="the new cell in the file")
        path.write_text(loaded.replace("import marimo as mo", "import marimo as mo  # me"))
        await until(lambda: browser.text(browser.order[0]).endswith("# me"), what="my edit")
        await until(lambda: any("added by a peer" in line for line in mirror.lines), what="note")
        assert created in browser.cells
        await until(lambda: "peer_cell = 1" in path.read_text(), what="the cell back in the file")
        await client.flush()


@pytest.mark.parametrize("seed", [9, 23])
async def test_random_concurrent_edits_on_both_sides_all_survive(connect, tmp_path, seed):
    """Saves of the file and a peer's typing, interleaved at random: every edit ends up once."""
    import random

    from marimo_collab_ext.persistence.notebook_file import serialize_notebook

    rng = random.Random(seed)
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (client, _mirror):
        browser = await connect()
        markers: list[str] = []
        for round_ in range(25):
            if rng.random() < 0.5:
                nb = parse_notebook(path.read_text())
                cell = rng.randrange(len(nb.cells))
                lines = nb.cells[cell].code.split("\n")
                lines.insert(rng.randrange(len(lines) + 1), f"# L{round_}")
                nb.cells[cell].code = "\n".join(lines)
                path.write_text(serialize_notebook(nb))
                markers.append(f"# L{round_}")
            if rng.random() < 0.6:
                cid = rng.choice(browser.order)
                text = browser.text(cid)
                starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
                browser.edit(cid, {"from": rng.choice(starts), "insert": f"# R{round_}\n"})
                markers.append(f"# R{round_}")
            await asyncio.sleep(rng.choice([0, 0.01, 0.05, 0.1, 0.3]))
        await browser.flush()

        def session() -> str:
            return "\n".join(browser.text(c) for c in browser.order)

        await until(lambda: all(m in session() for m in markers), timeout=20,
                    what="every edit in the session")
        await client.flush()
        await until(lambda: all(m in path.read_text() for m in markers), timeout=20,
                    what="every edit in the file")
        await asyncio.sleep(0.5)
        for marker in markers:
            assert session().count(marker + "\n") + session().endswith(marker) == 1, marker
        assert [c.rstrip() for c in cells(path)] == [
            browser.text(c).rstrip() for c in browser.order]


async def test_a_save_of_more_cell_ops_than_one_batch_holds_reaches_the_session(connect,
                                                                              tmp_path):
    # The server takes at most 1,000 ops per `cells` batch: the mirror sends 1,500 new cells in
    # several batches, and is not stuck afterwards (later remote edits still reach the file).
    path = tmp_path / "local.py"
    async with mirrored(connect, path) as (client, mirror):
        browser = await connect()
        text = path.read_text()
        end = text.index("if __name__")
        added = "".join(f"@app.cell\ndef _():\n    v{i} = {i}\n    return\n\n\n"
                        for i in range(1500))
        path.write_text(text[:end] + added + text[end:])
        await until(lambda: len(browser.order) == 1506, 60, "1,500 new cells in the session")
        assert [browser.text(c) for c in browser.order[6:]] == [f"v{i} = {i}"
                                                                for i in range(1500)]
        assert not any("not sent" in line for line in mirror.lines)

        browser.edit(browser.order[0], {"from": 0, "insert": "# remote\n"})
        await browser.flush()
        # (a cheap check: parsing 1,506 cells every poll would starve the in-process server)
        # a liveness check, not a timing one: rewriting 1,506 cells takes seconds on a busy machine
        await until(lambda: "# remote\n" in path.read_text(), 120,
                    "a later remote edit in the file")
        written = cells(path)
        assert len(written) == 1506 and written[0].startswith("# remote\n")
        await client.flush()


def test_a_large_plan_is_cut_into_batches_each_valid_on_its_own():
    # Pure: the batches of a plan with every kind of op, applied one by one as the server
    # does; after each, planning again from the base as far as sent plans only the rest.
    from marimo_collab_ext.client.mirror import _apply_ops, _batches
    from marimo_collab_ext.persistence.disk_merge import LiveCell, plan_external_merge
    from marimo_collab_ext.persistence.notebook_file import CellData
    from marimo_collab_ext.room.structure import CellMeta, NotebookStructure

    base = [CellData(f"a{i} = {i}") for i in range(1200)]
    base_ids = [f"c{i}" for i in range(1200)]
    local = [CellData(base[-1].code)]  # the last cell moved first
    for i, cell in enumerate(base[:-1]):
        if i % 4 == 0:
            continue  # 300 deleted
        local.append(CellData(cell.code, name=f"n{i}") if i % 97 == 1 else cell)  # renamed
        if i % 10 == 2:
            local += [CellData(f"print('between', {i}, {k})") for k in range(5)]
    local += [CellData(f"print('at the end', {k})") for k in range(1500)]
    structure = NotebookStructure([(cid, CellMeta()) for cid in base_ids])
    codes = {cid: cell.code for cid, cell in zip(base_ids, base, strict=True)}

    def live() -> list[LiveCell]:
        return [LiveCell(cid, codes[cid], structure.meta[cid].name,
                         dict(structure.meta[cid].config)) for cid in structure.order]

    ids = iter(range(10_000))
    plan = plan_external_merge(base, base_ids, local, live(), new_id=lambda: f"f{next(ids)}")
    kinds = [op["op"] for op in plan.ops]
    assert len(plan.ops) > 2000 and {"create", "delete", "move", "rename"} <= set(kinds)
    sent, sent_ids = base, base_ids
    batches = _batches(plan.ops)
    assert [len(b) for b in batches[:-1]] == [1000] * (len(batches) - 1)
    for k, batch in enumerate(batches):
        structure.apply(batch, max_cells=5000)  # raises if the batch is not valid on its own
        codes.update({op["cell_id"]: op["code"] for op in batch if op["op"] == "create"})
        sent, sent_ids = _apply_ops(sent, sent_ids, batch)
        rest = plan_external_merge(sent, sent_ids, local, live(), new_id=lambda: "again")
        assert len(rest.ops) == sum(len(b) for b in batches[k + 1:])
    assert rest.ops == [] and [codes[cid] for cid in structure.order] == [c.code for c in local]
    assert [structure.meta[cid].name for cid in structure.order] == [c.name for c in local]
