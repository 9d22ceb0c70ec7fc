"""The shared marimo kernel through the protocol: every peer sees the same runs and widgets."""

from __future__ import annotations

import asyncio
import re

from marimo_collab_ext.client import CollabClient

TIMEOUT = 60


def output_text(message: dict) -> str:
    output = (message.get("data") or {}).get("output") or {}
    data = output.get("data")
    return data if isinstance(data, str) else str(data)


async def wait_for_output(client: CollabClient, cell_id: str, needle: str) -> dict:
    """The next output of `cell_id` that contains `needle` (says what it saw instead)."""
    seen = []

    def matches(event: dict) -> bool:
        if event["type"] == "kernel" and event["op"] == "cell-op":
            seen.append((event["data"].get("cell_id"), output_text(event)[:80]))
        return (event["type"] == "kernel" and event["op"] == "cell-op"
                and event["data"].get("cell_id") == cell_id and needle in output_text(event))

    try:
        return await client.next_event(matches, TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"no {needle!r} in {cell_id}; saw {seen[-12:]}") from None


def object_id_in(html: str) -> str:
    """The object id of the first marimo UI element in an output's HTML."""
    return re.search(r"object-id=['\"]([^'\"]+)['\"]", html).group(1)


async def test_six_cells_with_a_slider_shared_by_three_peers(connect):
    a, b = await connect(), await connect()
    cells = a.order
    slider_cell, squares_cell, sum_cell, print_cell = cells[2], cells[3], cells[4], cells[5]

    idle = asyncio.Event()  # the kernel's last announced status was idle
    a.listeners.append(lambda e: (idle.set() if e["status"] == "idle" else idle.clear())
                       if e["type"] == "kernel_status" else None)
    slider_html = []
    b.listeners.append(lambda e: slider_html.append(output_text(e)) if e["type"] == "kernel"
                       and e["op"] == "cell-op" and e["data"].get("cell_id") == slider_cell
                       and "marimo-slider" in output_text(e) else None)
    await a.run(cells)
    for peer in (a, b):  # default slider value 5: 1+4+9+16+25
        await wait_for_output(peer, sum_cell, "55")
    object_id = object_id_in(slider_html[-1])

    # A changes a cell's code and runs it: B receives the new downstream value
    old = "[n * n for n in range(1, slider.value + 1)]"
    start = a.text(squares_cell).index(old)
    a.edit(squares_cell, {"from": start, "to": start + len(old),
                          "insert": "[n * n * n for n in range(1, slider.value + 1)]"})
    await a.flush()
    await a.run([squares_cell])
    await wait_for_output(b, sum_cell, "225")  # 1+8+27+64+125

    # B moves the slider: A sees the echo (marimo sends none) and the rerun
    await b.set_ui_value(object_id, 3)
    echo = await a.next_event(lambda e: e["type"] == "kernel"
                              and e["op"] == "send-ui-element-message", TIMEOUT)
    assert echo["data"] == {"ui_element": object_id,
                            "message": {"type": "marimo-ui-value-update", "value": 3}}
    await wait_for_output(a, sum_cell, "36")  # 1+8+27
    await b.next_event(lambda e: e["type"] == "kernel" and e["op"] == "cell-op"
                       and e["data"].get("cell_id") == sum_cell and "36" in output_text(e))

    # a late joiner, once the rerun is over, gets the outputs and the slider's value
    await asyncio.wait_for(idle.wait(), TIMEOUT)
    c = await connect()
    kernel = c.join_response["kernel"]
    assert kernel["status"] in ("idle", "ready")
    assert "36" in str(kernel["outputs"][sum_cell]["output"]["data"])
    assert kernel["ui_values"][object_id] == 3
    assert "27" in str(kernel["outputs"][print_cell]["console"])


async def test_run_uses_the_servers_code_not_a_clients(connect):
    a = await connect()
    cell = a.order[5]
    a.edit(cell, {"from": 0, "to": len(a.text(cell)), "insert": "print('from the room')"})
    await a.flush()
    await a.request({"type": "run", "cell_ids": [cell], "code": "print('from the client')"})
    event = await a.next_event(lambda e: e["type"] == "kernel" and e["op"] == "cell-op"
                               and e["data"].get("cell_id") == cell
                               and e["data"].get("console"), TIMEOUT)
    assert "from the room" in str(event["data"]["console"])


async def test_unknown_ui_object_is_bad_request(connect):
    a = await connect()
    await a.run(a.order)
    await a.next_event(lambda e: e["type"] == "kernel_status" and e["status"] == "idle", TIMEOUT)
    try:
        await a.set_ui_value("no-such-object", 1)
    except Exception as exc:
        assert getattr(exc, "code", None) == "bad_request"
    else:
        raise AssertionError("an unknown UI object must be refused")


PRESSES = '''import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo
    button = mo.ui.button(value=0, on_click=lambda v: v + 1, label="press")
    button
    return (button,)


@app.cell
def _(button):
    import time
    time.sleep(0.1)
    f"pressed {button.value} times"
    return


if __name__ == "__main__":
    app.run()
'''


async def test_two_peers_pressing_at_once_count_every_press(connect, jp_root_dir, monkeypatch):
    from marimo_collab_ext.kernel import session as session_module

    (jp_root_dir / "presses.py").write_text(PRESSES)
    a = await connect("presses.py")
    b = await connect("presses.py")
    button_cell, count_cell = a.order
    button_html = []
    a.listeners.append(lambda e: button_html.append(output_text(e)) if e["type"] == "kernel"
                       and e["op"] == "cell-op" and e["data"].get("cell_id") == button_cell
                       and "marimo-button" in output_text(e) else None)
    await a.run(a.order)
    await wait_for_output(b, count_cell, "pressed 0 times")
    object_id = object_id_in(button_html[-1])

    # Each browser sends its own counter; the kernel counts presses, not values.
    await asyncio.gather(*(peer.set_ui_value(object_id, n) for n in (1, 2, 3) for peer in (a, b)))
    for peer in (a, b):
        await wait_for_output(peer, count_cell, "pressed 6 times")

    # A flood beyond the backlog is refused, never merged away.
    monkeypatch.setattr(session_module, "MAX_HELD_UI_BATCHES", 2)
    answers = await asyncio.gather(*(a.set_ui_value(object_id, 7) for _ in range(5)),
                                   return_exceptions=True)
    refused = [x for x in answers if isinstance(x, Exception)]
    assert refused and all(getattr(x, "code", None) == "rate_limited" for x in refused)
    await wait_for_output(b, count_cell, f"pressed {6 + 5 - len(refused)} times")
