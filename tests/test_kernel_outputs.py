"""KernelOutputs folds marimo notifications the way a late joiner must see them.

Pure data in, data out: no kernel is started here.
"""

from __future__ import annotations

import pytest

from marimo_collab_ext.kernel.model import UnknownObject
from marimo_collab_ext.kernel.outputs import KernelOutputs

SLIDER_HTML = (
    "<marimo-ui-element object-id='s-0' random-id='r1'><marimo-slider "
    "data-initial-value='3' data-label='null'></marimo-slider></marimo-ui-element>"
)


def out(data, mimetype="text/html", channel="output"):
    return {"channel": channel, "mimetype": mimetype, "data": data, "timestamp": 1.0}


def test_console_appends_merges_and_clears_when_a_queued_cell_starts():
    o = KernelOutputs(1000)
    o.apply("cell-op", {"cell_id": "a", "status": "queued"})
    o.apply("cell-op", {"cell_id": "a", "status": "running", "console": []})
    o.apply("cell-op", {"cell_id": "a", "console": out("x\n", "text/plain", "stdout")})
    o.apply("cell-op", {"cell_id": "a", "console": [out("y\n", "text/plain", "stdout")]})
    assert o.snapshot("busy")["outputs"]["a"]["console"][0]["data"] == "x\ny\n"
    assert o.busy()
    o.apply("cell-op", {"cell_id": "a", "status": "idle"})
    o.apply("cell-op", {"cell_id": "a", "status": "queued"})
    o.apply("cell-op", {"cell_id": "a", "status": "running"})
    assert o.snapshot("busy")["outputs"]["a"]["console"] == []


def test_console_is_bounded_and_says_what_it_dropped():
    o = KernelOutputs(100)
    for i in range(50):
        kind = "stdout" if i % 2 else "stderr"  # alternate so entries do not merge
        o.apply("cell-op", {"cell_id": "a", "console": out(f"line {i:03}\n", "text/plain", kind)})
    console = o.snapshot("idle")["outputs"]["a"]["console"]
    assert "dropped" in console[0]["data"]
    assert console[-1]["data"] == "line 049\n"
    assert sum(len(c["data"]) for c in console[1:]) <= 100


def test_oversized_output_is_replaced_for_peers_and_snapshot():
    o = KernelOutputs(1000)
    sent = o.apply("cell-op", {"cell_id": "a", "output": out("x" * 5000)})
    assert sent["output"]["mimetype"] == "text/plain"
    assert "Output too large" in sent["output"]["data"]
    assert o.snapshot("idle")["outputs"]["a"]["output"] == sent["output"]


def test_ui_values_follow_outputs_and_peer_updates():
    o = KernelOutputs(10_000)
    o.apply("cell-op", {"cell_id": "s", "output": out(SLIDER_HTML)})
    assert o.snapshot("idle")["ui_values"] == {"s-0": 3}
    o.set_ui_value("s-0", 8)
    # The same element shown again keeps its value; a re-created one starts over.
    o.apply("cell-op", {"cell_id": "s", "output": out(SLIDER_HTML)})
    assert o.snapshot("idle")["ui_values"] == {"s-0": 8}
    o.apply("cell-op", {"cell_id": "s", "output": out(SLIDER_HTML.replace("r1", "r2"))})
    assert o.snapshot("idle")["ui_values"] == {"s-0": 3}
    o.apply("cell-op", {"cell_id": "s", "output": out("gone")})
    assert o.snapshot("idle")["ui_values"] == {}
    with pytest.raises(UnknownObject):
        o.set_ui_value("s-0", 1)


# mo.ui.array as marimo 0.25 writes it: the children sit in a JSON data attribute, escaped
# once more (&#x27; quotes, \u003c brackets behind &#92;).
ARRAY_HTML = (
    "<marimo-ui-element object-id='a-2' random-id='r0'><marimo-dict "
    "data-initial-value='{&quot;0&quot;:1}' data-label='null' "
    "data-element-ids='{&quot;a-1&quot;:&quot;0&quot;}'><marimo-json-output data-json-data='"
    "[&quot;text/html:&#92;u003cmarimo-ui-element object-id=&#x27;a-1&#x27; "
    "random-id=&#x27;r1&#x27;&#92;u003e&#92;u003cmarimo-slider data-initial-value=&#x27;1&#x27;"
    " data-label=&#x27;null&#x27;&#92;u003e&#92;u003c/marimo-slider&#92;u003e"
    "&#92;u003c/marimo-ui-element&#92;u003e&quot;]'></marimo-json-output></marimo-dict>"
    "</marimo-ui-element>"
)


def test_elements_inside_a_composite_are_shown_elements_too():
    """marimo's frontend sets a child's value as well as its array's: both must be accepted."""
    o = KernelOutputs(10_000)
    o.apply("cell-op", {"cell_id": "a", "output": out(ARRAY_HTML)})
    assert o.snapshot("idle")["ui_values"] == {"a-2": {"0": 1}, "a-1": 1}
    assert o.element_tag("a-1") == "marimo-slider"
    o.set_ui_value("a-1", 4)
    assert o.snapshot("idle")["ui_values"]["a-1"] == 4


def test_stdin_prompt_becomes_console_text_once_answered():
    o = KernelOutputs(1000)
    assert o.answer_stdin("x") is None
    o.apply("cell-op", {"cell_id": "a", "console": out("name?", "text/plain", "stdin")})
    assert o.waiting_for_stdin()
    cell_id, console = o.answer_stdin("bob")
    assert cell_id == "a" and console[0] == {
        **console[0],
        "channel": "stdout",
        "data": "name? bob\n",
    }
    assert not o.waiting_for_stdin()


def test_edited_code_shows_stale_and_deleted_cells_leave_the_snapshot():
    o = KernelOutputs(1000)
    o.set_code({"a": "x = 1", "b": "x"})
    o.apply("execution", {"cell_id": "a", "phase": "planned", "code": "x = 1"})
    o.apply("cell-op", {"cell_id": "a", "status": "idle", "output": out("")})
    assert o.snapshot("idle")["outputs"]["a"]["status"] == "idle"
    o.set_code({"a": "x = 2"})
    snap = o.snapshot("idle")["outputs"]
    assert snap["a"]["status"] == "stale" and snap["a"]["edited"]
    assert "b" not in snap


def test_clear_and_death_reset_what_peers_see():
    o = KernelOutputs(1000)
    o.apply("cell-op", {"cell_id": "a", "status": "running"})
    assert o.stop_active() == ["a"]
    assert o.snapshot("dead")["outputs"]["a"]["status"] == "idle"
    assert o.clear() == ["a"]
    assert o.snapshot("idle") == {"status": "idle", "outputs": {}, "ui_values": {}, "models": {}}


def test_kernel_environment_drops_the_servers_credentials():
    from marimo_collab_ext.kernel.adapter import kernel_environment

    env = kernel_environment({"PATH": "/bin", "JUPYTERHUB_API_TOKEN": "secret",
                              "JUPYTER_TOKEN": "t", "JUPYTERHUB_OAUTH_CALLBACK_URL": "x",
                              "HOME": "/home/a"})
    assert env == {"PATH": "/bin", "HOME": "/home/a"}
