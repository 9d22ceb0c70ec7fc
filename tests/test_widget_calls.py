"""marimo's frontend through our socket: UI elements' function calls and widget model messages.

Real server, real marimo kernel, three people (tests/identities.py): rita runner, eddie editor,
vera viewer. docs/protocol.md, "Running" and "Read-only functions".
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import uuid

import pytest

from marimo_collab_ext.auth.roles import READ_ONLY_FUNCTIONS, Role, required_role
from marimo_collab_ext.client import CollabClient, CollabError
from marimo_collab_ext.kernel.outputs import KernelOutputs
from marimo_collab_ext.room import kernel_link

from .test_kernel_protocol import TIMEOUT, object_id_in, output_text, wait_for_output

TABLE = '''import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo
    return (mo,)


@app.cell
def _(mo):
    table = mo.ui.table([{"n": i, "square": i * i} for i in range(1000)], page_size=10)
    table
    return (table,)


@app.cell
def _(mo):
    browser = mo.ui.file_browser(initial_path=".")
    browser
    return


@app.cell
def _():
    import time
    time.sleep(2)
    return


if __name__ == "__main__":
    app.run()
'''

COUNTER = '''import marimo

app = marimo.App()


@app.cell
def _():
    import anywidget
    import marimo as mo
    import traitlets

    class Counter(anywidget.AnyWidget):
        _esm = "export default { render({ model, el }) { el.textContent = model.get('count'); } }"
        count = traitlets.Int(0).tag(sync=True)

    counter = mo.ui.anywidget(Counter())
    counter
    return (counter,)


@app.cell
def _(counter):
    f"count is {counter.value['count']}"
    return


if __name__ == "__main__":
    app.run()
'''


pytestmark = pytest.mark.people  # tokens name people (tests/identities.py)


@pytest.fixture
def people(server, jp_asyncio_loop):
    """`await people("table.py", "rita", "vera")`: those people joined to that notebook."""
    clients: list[CollabClient] = []

    async def join(path: str, *names: str) -> list[CollabClient]:
        joined = [await CollabClient.connect(server["url"], path, token=f"{n}-token")
                  for n in names]
        clients.extend(joined)
        return joined

    yield join
    for client in clients:
        jp_asyncio_loop.run_until_complete(client.close())


def results(client: CollabClient) -> list[dict]:
    """Every function-call-result this client receives from now on."""
    seen: list[dict] = []
    client.listeners.append(lambda e: seen.append(e["data"]) if e["type"] == "kernel"
                            and e["op"] == "function-call-result" else None)
    return seen


async def wait_until(predicate, what: str, timeout: float = TIMEOUT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def call(namespace: str, function_name: str, args: dict | None = None, **extra) -> dict:
    return {"type": "function_call", "function_call_id": uuid.uuid4().hex,
            "namespace": namespace, "function_name": function_name,
            "args": {} if args is None else args, **extra}


async def expect_error(client: CollabClient, message: dict, code: str) -> None:
    with pytest.raises(CollabError) as err:
        await client.request(message)
    assert err.value.code == code, err.value.response


async def shown_elements(runner: CollabClient, cells: list[str]) -> dict[str, str]:
    """Run these cells; the object id of each element tag they show."""
    found: dict[str, str] = {}

    def watch(event: dict) -> None:
        if event["type"] == "kernel" and event["op"] == "cell-op":
            html = output_text(event)
            for tag in ("marimo-table", "marimo-file-browser", "marimo-anywidget"):
                if f"<{tag} " in html:
                    found[tag] = object_id_in(html)

    runner.listeners.append(watch)
    await runner.run(cells)
    return found


async def table_room(people, jp_root_dir):
    """rita (runner) and vera (viewer) in a notebook whose table of 1,000 rows is shown."""
    (jp_root_dir / "table.py").write_text(TABLE)
    rita, vera = await people("table.py", "rita", "vera")
    found = await shown_elements(rita, rita.order[:3])
    await wait_until(lambda: {"marimo-table", "marimo-file-browser"} <= found.keys(),
                     "the table and the file browser")
    return rita, vera, found


# ---- function calls ----------------------------------------------------------------------------


async def test_viewer_pages_a_table_and_only_she_gets_the_answer(people, jp_root_dir):
    rita, vera, found = await table_room(people, jp_root_dir)
    table = found["marimo-table"]
    to_rita, to_vera = results(rita), results(vera)
    message = call(table, "search", {"page_size": 10, "page_number": 1})
    answer = await vera.request(message)
    assert answer["function_call_id"] == message["function_call_id"]
    await wait_until(lambda: to_vera, "vera's result")
    result = to_vera[0]
    assert result["function_call_id"] == message["function_call_id"]
    assert result["found"] is True and result["status"]["code"] == "ok", result
    assert result["return_value"]["total_rows"] == 1000
    rows = json.loads(result["return_value"]["data"])
    assert [r["n"] for r in rows] == list(range(10, 20))

    # the runner's own query answers the runner only; the viewer's was never hers
    mine = call(table, "get_column_summaries", {"precompute": False})
    await rita.request(mine)
    await wait_until(lambda: to_rita, "rita's result")
    await asyncio.sleep(0.3)
    assert [r["function_call_id"] for r in to_rita] == [mine["function_call_id"]]
    assert [r["function_call_id"] for r in to_vera] == [message["function_call_id"]]

    (eddie,) = await people("table.py", "eddie")  # an editor reads too; joins carry no results
    assert "function-call-result" not in json.dumps(eddie.join_response)
    to_eddie = results(eddie)
    await eddie.request(call(table, "search", {"page_size": 5, "page_number": 0, "query": "99"}))
    await wait_until(lambda: to_eddie, "eddie's result")
    matches = [i for i in range(1000) if "99" in f"{i} {i * i}"]
    assert to_eddie[0]["return_value"]["total_rows"] == len(matches)


async def test_viewer_may_not_call_a_function_with_effects(people, jp_root_dir):
    rita, vera, found = await table_room(people, jp_root_dir)
    browser, table = found["marimo-file-browser"], found["marimo-table"]
    to_rita, to_vera = results(rita), results(vera)
    listing = call(browser, "list_directory", {"path": "."})
    await expect_error(vera, listing, "forbidden")
    await expect_error(vera, call(table, "no_such_function"), "forbidden")
    await rita.request(listing)  # a runner may
    await wait_until(lambda: to_rita, "rita's listing")
    assert to_rita[0]["status"]["code"] == "ok"
    assert "table.py" in json.dumps(to_rita[0]["return_value"])
    await asyncio.sleep(0.3)
    assert to_vera == []


async def test_unknown_namespace_is_bad_request(people, jp_root_dir):
    rita, vera, _ = await table_room(people, jp_root_dir)
    for client in (vera, rita):
        await expect_error(client, call("no-such-element", "search",
                                        {"page_size": 10, "page_number": 0}), "bad_request")


async def test_malformed_function_calls_are_bad_requests_and_change_nothing(
        people, jp_root_dir):
    rita, vera, found = await table_room(people, jp_root_dir)
    table = found["marimo-table"]
    to_vera = results(vera)
    good = call(table, "search", {"page_size": 10, "page_number": 0})
    malformed = [
        {k: v for k, v in good.items() if k != "function_call_id"},
        {**good, "function_call_id": 7},
        {**good, "function_call_id": ""},
        {**good, "function_call_id": "x" * 129},
        {**good, "namespace": None},
        {**good, "namespace": ["x"]},
        {**good, "function_name": ""},
        {**good, "function_name": {"name": "search"}},
        {**good, "args": [10, 0]},
        {**good, "args": "page_size=10"},
        {k: v for k, v in good.items() if k != "args"},
    ]
    for message in malformed:
        await expect_error(vera, message, "bad_request")
    await asyncio.sleep(0.3)
    assert to_vera == []
    await vera.request(good)
    await wait_until(lambda: to_vera, "the well-formed call's result")
    await asyncio.sleep(0.2)
    assert [r["function_call_id"] for r in to_vera] == [good["function_call_id"]]


async def test_calls_in_flight_are_bounded_and_forgotten_when_the_caller_leaves(
        people, jp_root_dir, server, monkeypatch):
    rita, vera, found = await table_room(people, jp_root_dir)
    table = found["marimo-table"]
    link = server["app"].web_app.settings["marimo_collab"].room_manager.rooms["table.py"].kernel
    monkeypatch.setattr(kernel_link, "MAX_CALLS_IN_FLIGHT", 2)
    to_rita = results(rita)
    await rita.run([rita.order[3]])  # two seconds asleep: calls wait behind it
    answers = await asyncio.gather(
        *(vera.request(call(table, "search", {"page_size": 10, "page_number": n}))
          for n in range(5)), return_exceptions=True)
    refused = [a for a in answers if isinstance(a, Exception)]
    assert len(refused) == 3 and all(a.code == "rate_limited" for a in refused), answers
    assert len(link._calls) == 2
    await vera.close()  # gone before the answers come: they go to nobody
    await wait_until(lambda: not link._calls, "the departed caller's calls to be dropped")
    await rita.next_event(lambda e: e["type"] == "kernel_status" and e["status"] == "idle",
                          TIMEOUT)
    await asyncio.sleep(0.3)
    assert to_rita == []


# ---- widget models (anywidget) -----------------------------------------------------------------

needs_anywidget = pytest.mark.skipif(importlib.util.find_spec("anywidget") is None,
                                     reason="anywidget is not installed")


def model_update(model_id: str, state: dict, **extra) -> dict:
    return {"type": "set_model_value", "model_id": model_id,
            "message": {"method": "update", "state": state, "bufferPaths": []},
            "buffers": [], **extra}


@needs_anywidget
async def test_runner_sets_a_widget_model_and_everyone_follows(people, jp_root_dir):
    (jp_root_dir / "counter.py").write_text(COUNTER)
    rita, eddie = await people("counter.py", "rita", "eddie")
    opened: list[dict] = []
    eddie.listeners.append(lambda e: opened.append(e["data"]) if e["type"] == "kernel"
                           and e["op"] == "model-lifecycle"
                           and e["data"]["message"]["method"] == "open"
                           and "count" in e["data"]["message"]["state"] else None)
    await rita.run(rita.order)
    await wait_for_output(eddie, rita.order[1], "count is 0")
    model_id = opened[-1]["model_id"]

    await rita.request(model_update(model_id, {"count": 7}))
    echo = await eddie.next_event(lambda e: e["type"] == "kernel"
                                  and e["op"] == "model-lifecycle"
                                  and e["data"]["message"]["method"] == "update", TIMEOUT)
    assert echo["data"] == {"model_id": model_id, "message": {
        "method": "update", "state": {"count": 7}, "buffer_paths": [], "buffers": []}}
    await wait_for_output(eddie, rita.order[1], "count is 7")

    (vera,) = await people("counter.py", "vera")  # a late joiner sees the model as it is now
    model = vera.join_response["kernel"]["models"][model_id]
    assert model["method"] == "open" and model["state"]["count"] == 7
    for client in (vera, eddie):
        await expect_error(client, model_update(model_id, {"count": 1}), "forbidden")

    malformed = [
        model_update("no-such-model", {"count": 1}),
        model_update(model_id, {"_esm": "export default {}"}),
        model_update(model_id, {"count": 1}, buffers=["AAAA"]),  # a buffer without a path
        model_update(model_id, {"count": 1}, buffers=["not base64!"]),
        {**model_update(model_id, {}), "message": "count=1"},
        {**model_update(model_id, {}), "message": {"method": "delete"}},
        {**model_update(model_id, {}), "model_id": 3},
    ]
    for message in malformed:
        await expect_error(rita, message, "bad_request")
    (late,) = await people("counter.py", "rita")
    assert late.join_response["kernel"]["models"][model_id]["state"]["count"] == 7


# ---- pure parts --------------------------------------------------------------------------------


def test_only_listed_functions_of_listed_elements_are_read_only():
    assert required_role("function_call", ("marimo-table", "search")) is Role.VIEWER
    assert required_role("function_call", ("marimo-dataframe", "get_dataframe")) is Role.VIEWER
    assert required_role("function_call", ("marimo-chatbot", "send_prompt")) is Role.RUNNER
    assert required_role("function_call", ("marimo-file-browser", "list_directory")) is Role.RUNNER
    assert required_role("function_call", ("my-plugin", "search")) is Role.RUNNER
    assert required_role("function_call") is Role.RUNNER
    assert required_role("set_model_value") is Role.RUNNER


def test_read_only_functions_exist_in_the_installed_marimo():
    import marimo as mo

    elements = {cls._name: cls for cls in (mo.ui.table, mo.ui.dataframe, mo.ui.chat)}
    assert elements.keys() == READ_ONLY_FUNCTIONS.keys()
    for tag, names in READ_ONLY_FUNCTIONS.items():
        source = inspect.getsource(elements[tag])
        for name in names:
            assert f'name="{name}"' in source, (tag, name)


def test_model_states_fold_like_marimos_session_view():
    outputs = KernelOutputs(max_output_bytes=2**20)
    lifecycle = "model-lifecycle"
    outputs.apply(lifecycle, {"model_id": "m", "message": {
        "method": "open", "state": {"count": 0, "data": None}, "buffer_paths": [["data"]],
        "buffers": ["AAE="], "esm_spec": {"url": "u", "hash": "h"}}})
    outputs.apply(lifecycle, {"model_id": "m", "message": {
        "method": "update", "state": {"count": 2}, "buffer_paths": [], "buffers": []}})
    outputs.apply(lifecycle, {"model_id": "m", "message": {"method": "custom", "content": 1,
                                                          "buffers": []}})
    outputs.write_model("m", {"data": None}, [["data"]], ["AgM="])
    outputs.apply(lifecycle, {"model_id": "gone", "message": {
        "method": "open", "state": {}, "buffer_paths": [], "buffers": []}})
    outputs.apply(lifecycle, {"model_id": "gone", "message": {"method": "close"}})
    assert outputs.snapshot("idle")["models"] == {"m": {
        "method": "open", "state": {"count": 2, "data": None}, "buffer_paths": [["data"]],
        "buffers": ["AgM="], "esm_spec": {"url": "u", "hash": "h"}}}
    outputs.clear()
    assert outputs.snapshot("idle")["models"] == {}
