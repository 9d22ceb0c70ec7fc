"""`marimo-collab run`: run cells in the shared kernel and print their outputs as text.

A run is over at marimo's `completed-run`, or when every cell that ran is idle again.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Callable

from ..client import CollabClient

_TAG = re.compile(r"<[^>]+>")
_BLOCK = re.compile(r"</(p|div|h[1-6]|li|tr|pre)>|<br\s*/?>", re.IGNORECASE)
_SCRIPT = re.compile(r"<(script|style)\b.*?</\1>", re.IGNORECASE | re.DOTALL)
# After the last cell is idle, how long to wait for `completed-run` before calling it done.
_IDLE_GRACE = 1.0


class CellChoiceError(ValueError):
    """A cell argument that names no cell."""


def choose_cells(client: CollabClient, wanted: list[str], run_all: bool) -> list[str]:
    """Cell ids from ids or 1-based positions (negative counts from the end), or all of them."""
    if run_all:
        return list(client.order)
    ids = []
    for item in wanted:
        if item in client.cells:
            ids.append(item)
            continue
        try:
            index = int(item)
        except ValueError:
            raise CellChoiceError(f"no cell {item!r} (ids: {', '.join(client.order)})") from None
        count = len(client.order)
        if not (1 <= index <= count or -count <= index <= -1):
            raise CellChoiceError(f"no cell #{index}: the notebook has {count} cells")
        ids.append(client.order[index - 1 if index > 0 else index])
    return ids


def output_text(entry: dict | None) -> str:
    """A marimo CellOutput as plain text (HTML stripped, errors spelled out)."""
    if not entry:
        return ""
    mimetype, data = entry.get("mimetype", ""), entry.get("data")
    if mimetype == "application/vnd.marimo+error":
        errors = data if isinstance(data, list) else [data]
        return "\n".join("error: " + _error_text(e) for e in errors)
    if mimetype == "application/vnd.marimo+mimebundle" and isinstance(data, dict):
        for kind in ("text/plain", "text/markdown", "text/html"):
            if isinstance(data.get(kind), str):
                return output_text({"mimetype": kind, "data": data[kind]})
        return f"[{', '.join(data)}]"
    if mimetype.startswith(("image/", "video/", "audio/")):
        return f"[{mimetype} output]"
    if not isinstance(data, str):
        return json.dumps(data)
    if mimetype == "application/vnd.marimo+traceback":  # HTML-highlighted: keep indentation
        return html.unescape(_TAG.sub("", data)).strip("\n")
    if mimetype in ("text/html", "text/markdown") and data.lstrip().startswith("<"):
        return _html_text(data)  # marimo sends markdown already rendered
    return data


def _html_text(data: str) -> str:
    text = _SCRIPT.sub("", data)
    text = _BLOCK.sub("\n", text)
    text = html.unescape(_TAG.sub("", text))
    lines = [line.strip() for line in text.splitlines()]
    text = "\n".join(line for line in lines if line)
    if not text and "<marimo-ui-element" in data:
        return "[interactive UI element: open the notebook to use it]"
    return text


def _error_text(error) -> str:
    if isinstance(error, dict):
        parts = [str(error.get("type", "error"))]
        for key in ("msg", "exception_string", "description"):
            if error.get(key):
                parts.append(str(error[key]))
                break
        return ": ".join(parts)
    return str(error)


async def run_cells(client: CollabClient, cell_ids: list[str], out: Callable[[str], None],
                    timeout: float) -> int:
    """Run, print outputs and console text as they come; 0 if every cell ran without error.

    A run of every cell is Run all, which skips cells whose output is current (marimo's
    "run stale"): their outputs are printed as the session holds them.
    """
    label = {cid: f"#{client.order.index(cid) + 1}" for cid in client.order}
    statuses: dict[str, str] = {}
    wanted = set(cell_ids)
    ran: set[str] = set()
    started = failed = False
    kernel = client.join_response.get("kernel") or {}
    status = kernel.get("status")
    # Drop what was queued before the run: only this run's notifications matter.
    while not client.events.empty():
        event = client.events.get_nowait()
        if event.get("type") == "kernel_status":
            status = event.get("status")
    # The broadcasts before the answer end with the kernel's status once the run was taken.
    before_answer: list[dict] = []
    client.listeners.append(before_answer.append)
    try:
        await client.run(cell_ids)
    finally:
        client.listeners.remove(before_answer.append)
    for event in before_answer:
        if event.get("type") == "kernel_status":
            status = event.get("status")
    # Idle once the run was taken: it queued nothing, or it is already over.
    settled = status == "idle"
    out(f"running {', '.join(label[c] + ' ' + c for c in cell_ids)}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    idle_since: float | None = None
    received = 0
    while not (settled and received >= len(before_answer)):
        wait = deadline - loop.time()
        if idle_since is not None:
            wait = min(wait, idle_since + _IDLE_GRACE - loop.time())
        if wait <= 0:
            if idle_since is not None:
                break
            out(f"timed out after {timeout:g} s")
            return 2
        try:
            event = await asyncio.wait_for(client.events.get(), wait)
        except asyncio.TimeoutError:
            continue
        if event.get("type") != "response":
            received += 1
        if event.get("type") == "kernel_status" and event.get("status") in ("dead", "stopped"):
            out(f"kernel {event['status']}: {event.get('message', '')}".rstrip(": "))
            return 1
        if event.get("type") == "kernel_status" and event.get("status") == "idle":
            # Idle after the answer: everything asked of the kernel so far is done.
            settled = settled or received > len(before_answer)
        if event.get("type") != "kernel":
            continue
        if event.get("op") == "completed-run":
            # Starting the kernel completes a run of its own before ours is even queued.
            if started and not any(s in ("queued", "running") for s in statuses.values()):
                break
            continue
        if event.get("op") != "cell-op":
            continue
        data = event.get("data") or {}
        cid = data.get("cell_id")
        if data.get("status") in ("queued", "running"):
            ran.add(cid)
        if cid not in ran:
            continue  # outputs replayed when the kernel starts, before this run
        failed = _print_cell(out, label.get(cid, cid), data.get("console"),
                             data.get("output")) or failed
        if data.get("status"):
            statuses[cid] = data["status"]
            started = started or bool(ran & wanted)
        busy = any(s in ("queued", "running") for s in statuses.values())
        idle_since = loop.time() if started and not busy else None
    current = [c for c in cell_ids if c not in ran]
    if current:
        out(f"current, not rerun: {', '.join(label[c] for c in current)}")
        outputs = kernel.get("outputs") or {}
        for cid in current:
            shown = outputs.get(cid) or {}
            failed = _print_cell(out, label[cid], shown.get("console"), shown.get("output")) \
                or failed
    out("run completed" + (" with errors" if failed else ""))
    return 1 if failed else 0


def _print_cell(out: Callable[[str], None], name: str, console, output) -> bool:
    """Print a cell's console entries and output; whether the output is an error."""
    for entry in [console] if isinstance(console, dict) else console or []:
        text = output_text(entry)
        if text:
            stream = "stderr" if entry.get("channel") == "stderr" else "stdout"
            out(_prefix(f"{name} {stream}", text.rstrip("\n")))
    if output is None:
        return False
    text = output_text(output)
    if text:
        out(_prefix(f"{name} output", text))
    return output.get("mimetype") == "application/vnd.marimo+error"


def _prefix(label: str, text: str) -> str:
    return "\n".join(f"[{label}] {line}" for line in text.split("\n"))
