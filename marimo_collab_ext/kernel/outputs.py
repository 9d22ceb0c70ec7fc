"""Fold marimo kernel notifications into the state a late joiner needs.

Pure data (dicts as decoded from marimo's JSON): no I/O, no marimo import.
"""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .model import UnknownObject

# marimo renders every UI element as
# <marimo-ui-element object-id='..' random-id='..'><marimo-x data-initial-value='..' ...>;
# a new random-id means the element was re-created with its initial value.
_UI_ELEMENT = re.compile(
    r"<marimo-ui-element object-id='([^']*)' random-id='([^']*)'>\s*"
    r"<([\w-]+) data-initial-value='([^']*)'"
)
# Elements whose every value is an event (a press), not a state: never merge two of them.
_EVENT_ELEMENTS = frozenset({"marimo-button"})
_ACTIVE = ("queued", "running")
# Exceptions, interruptions, and cells an ancestor's error or mo.stop() kept from running.
_ERROR_MIMETYPE = "application/vnd.marimo+error"
# A print loop can produce thousands of entries; marimo merges text anyway.
_MAX_CONSOLE_ENTRIES = 1000


def _size(data: Any) -> int:
    text = data if isinstance(data, str) else json.dumps(data)
    return len(text) if text.isascii() else len(text.encode())


def _html_strings(data: Any) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):  # a mimebundle: {mimetype: payload}
        return [v for v in data.values() if isinstance(v, str)]
    return []


def _ui_elements(output: dict[str, Any] | None) -> dict[str, tuple[str, str, Any]]:
    """object id -> (random id, element tag, initial value) of the elements shown."""
    found: dict[str, tuple[str, str, Any]] = {}
    if not output:
        return found
    for text in _html_strings(output.get("data")):
        if "marimo-ui-element" not in text:
            continue
        # Elements inside composites (mo.ui.array, dictionary, ...) sit in their parent's
        # JSON data attributes, escaped once more: look there after the top level.
        for markup in (text, _nested_markup(text)):
            for object_id, random_id, tag, initial in _UI_ELEMENT.findall(markup):
                try:
                    value = json.loads(html.unescape(initial))
                except ValueError:
                    value = None
                found.setdefault(object_id, (random_id, tag, value))
    return found


def _nested_markup(text: str) -> str:
    """HTML that marimo put inside data attributes (as JSON strings), unescaped."""
    unescaped = html.unescape(text)
    for escaped, plain in (("\\u003c", "<"), ("\\u003e", ">"), ("\\u0027", "'"),
                           ('\\"', '"')):
        unescaped = unescaped.replace(escaped, plain)
    return unescaped


def merge_model_state(state: dict[str, Any], buffers: dict[tuple, str],
                      new_state: dict[str, Any], paths: list[list[str | int]],
                      new_buffers: list[str]) -> None:
    """Fold a model update into `state` and `buffers` (path -> base64), in place.

    marimo's rule (ModelReplayState.apply_update): a key set anew drops the buffers under it.
    """
    for path in [p for p in buffers if p[0] in new_state]:
        del buffers[path]
    state.update(new_state)
    for path, buffer in zip(paths, new_buffers, strict=False):
        buffers[tuple(path)] = buffer


@dataclass
class _Model:
    """A widget model's current state, folded from its open and updates (a late joiner's copy)."""

    state: dict[str, Any]
    buffers: dict[tuple, str]
    esm_spec: Any = None

    def as_open(self) -> dict[str, Any]:
        """The model as one marimo `open` message, the way marimo replays models."""
        return {"method": "open", "state": dict(self.state),
                "buffer_paths": [list(p) for p in self.buffers],
                "buffers": list(self.buffers.values()), "esm_spec": self.esm_spec}


class _Shown(NamedTuple):
    """The instance of a UI element that the outputs show now."""

    random_id: str  # a new one: the element was created again, with its initial value
    tag: str  # marimo-slider, marimo-button, ...


@dataclass
class _CellState:
    output: dict[str, Any] | None = None
    console: list[dict[str, Any]] = field(default_factory=list)
    console_dropped: int = 0
    status: str | None = None
    stale_inputs: bool = False
    errored: bool = False
    ui: set[str] = field(default_factory=set)


class KernelOutputs:
    """Outputs, consoles, statuses and UI values of one kernel, as peers see them.

    `apply` folds one notification the way marimo's SessionView does.
    """

    def __init__(self, max_output_bytes: int) -> None:
        self.max_output_bytes = max_output_bytes
        self._cells: dict[str, _CellState] = {}
        self._ui_values: dict[str, Any] = {}
        self._ui_shown: dict[str, _Shown] = {}
        self._models: dict[str, _Model] = {}
        self._code: dict[str, str] = {}
        self._ran_code: dict[str, str] = {}
        # Cells given new code since they last ran: marimo dropped their variables then,
        # even if the code later returns to what ran.
        self._registered_since_run: set[str] = set()

    # -- folding -------------------------------------------------------------

    def apply(self, op: str, data: dict[str, Any]) -> dict[str, Any]:
        """Fold one notification; return it as peers must receive it.

        Outputs over the size limit come back replaced by a placeholder.
        """
        if op == "cell-op":
            self._cell_op(data)
        elif op == "execution" and data.get("phase") == "planned":
            if isinstance(data.get("code"), str):
                self._ran_code[data["cell_id"]] = data["code"]
                self._registered_since_run.discard(data["cell_id"])
        elif op == "send-ui-element-message":
            message = data.get("message") or {}
            object_id = data.get("ui_element")
            if message.get("type") == "marimo-ui-value-update" and object_id in self._ui_shown:
                self._ui_values[object_id] = message.get("value")
        elif op == "model-lifecycle":
            self._model_lifecycle(data)
        elif op == "interrupted":
            # An interrupted input() will never be answered (marimo does the same).
            while self.answer_stdin("") is not None:
                pass
        return data

    def _model_lifecycle(self, data: dict[str, Any]) -> None:
        # As marimo's SessionView: open replaces, update merges, close drops, custom is ephemeral.
        model_id, message = data.get("model_id"), data.get("message")
        if not isinstance(model_id, str) or not isinstance(message, dict):
            return
        method = message.get("method")
        state = message.get("state") if isinstance(message.get("state"), dict) else {}
        paths = message.get("buffer_paths") or []
        buffers = message.get("buffers") or []
        if method == "open":
            self._models[model_id] = _Model({}, {}, message.get("esm_spec"))
            merge_model_state(self._models[model_id].state, self._models[model_id].buffers,
                              state, paths, buffers)
        elif method == "update" and model_id in self._models:
            model = self._models[model_id]
            merge_model_state(model.state, model.buffers, state, paths, buffers)
            if message.get("esm_spec") is not None:
                model.esm_spec = message["esm_spec"]
        elif method == "close":
            self._models.pop(model_id, None)

    def _placeholder(self, entry: dict[str, Any], size: int) -> dict[str, Any]:
        limit = self.max_output_bytes / 2**20
        return {
            "channel": entry.get("channel", "output"),
            "mimetype": "text/plain",
            "data": f"Output too large ({size / 2**20:.1f} MB > limit {limit:.1f} MB); not shown.",
            "timestamp": entry.get("timestamp", time.time()),
        }

    def _cap(self, entry: dict[str, Any]) -> dict[str, Any]:
        size = _size(entry.get("data", ""))
        return self._placeholder(entry, size) if size > self.max_output_bytes else entry

    def _cell_op(self, data: dict[str, Any]) -> None:
        cell = self._cells.setdefault(data["cell_id"], _CellState())
        output = data.get("output")
        if output is not None:
            cell.errored = output.get("mimetype") == _ERROR_MIMETYPE
            output = data["output"] = self._cap(output)
            cell.output = output
            self._track_ui(cell, output)
        console = data.get("console")
        if isinstance(console, dict):
            console = data["console"] = self._cap(console)
            console = [console]
        elif isinstance(console, list):
            console = data["console"] = [self._cap(c) for c in console]
        status = data.get("status")
        # marimo clears the console on an explicit [] and when a queued cell starts.
        if console == [] or (status == "running" and cell.status == "queued"):
            cell.console = []
            cell.console_dropped = 0
        elif console:
            self._append_console(cell, console)
        if status is not None:
            cell.status = status
        if data.get("stale_inputs") is not None:
            cell.stale_inputs = bool(data["stale_inputs"])

    def _append_console(self, cell: _CellState, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            last = cell.console[-1] if cell.console else None
            if (
                last is not None
                and last.get("mimetype") == entry.get("mimetype") == "text/plain"
                and last.get("channel") == entry.get("channel")
                and isinstance(last.get("data"), str)
                and isinstance(entry.get("data"), str)
            ):
                cell.console[-1] = {**last, "data": last["data"] + entry["data"]}
            else:
                cell.console.append(entry)
        # Bounded per cell: keep the newest output, count what was dropped.
        budget = self.max_output_bytes
        total = sum(_size(e.get("data", "")) for e in cell.console)
        too_many = len(cell.console) > _MAX_CONSOLE_ENTRIES
        while (total > budget and len(cell.console) > 1) or too_many:
            total -= _size(cell.console.pop(0).get("data", ""))
            cell.console_dropped += 1
            too_many = len(cell.console) > _MAX_CONSOLE_ENTRIES
        if total > budget and isinstance(cell.console[0].get("data"), str):
            cell.console[0] = {**cell.console[0], "data": cell.console[0]["data"][-budget:]}
            cell.console_dropped += 1

    def _track_ui(self, cell: _CellState, output: dict[str, Any]) -> None:
        found = _ui_elements(output)
        for object_id, (random_id, tag, initial) in found.items():
            shown = self._ui_shown.get(object_id)
            if shown is None or shown.random_id != random_id:
                self._ui_values[object_id] = initial
            self._ui_shown[object_id] = _Shown(random_id, tag)
        cell.ui = set(found)
        self._gc_ui()

    # -- requests from peers -------------------------------------------------

    def set_ui_value(self, object_id: str, value: Any) -> None:
        """Record a peer's UI value; UnknownObject if no output shows that element."""
        if object_id not in self._ui_shown:
            raise UnknownObject(f"No UI element {object_id!r} in the current outputs")
        self._ui_values[object_id] = value

    def element_tag(self, object_id: str) -> str | None:
        """The tag (marimo-table, ...) of the UI element an output shows now; None if none."""
        shown = self._ui_shown.get(object_id)
        return shown.tag if shown is not None else None

    def has_model(self, model_id: str) -> bool:
        """Whether the kernel has a widget model open under this id."""
        return model_id in self._models

    def write_model(self, model_id: str, state: dict[str, Any], paths: list[list[str | int]],
                    buffers: list[str]) -> None:
        """Record a peer's model update: the kernel never echoes one (marimo's comm)."""
        model = self._models.get(model_id)
        if model is None:
            raise UnknownObject(f"No widget model {model_id!r} is open")
        merge_model_state(model.state, model.buffers, state, paths, buffers)

    def is_event(self, object_id: str) -> bool:
        """Whether each value of this element is an event (a button press) to keep apart."""
        shown = self._ui_shown.get(object_id)
        return shown is not None and shown.tag in _EVENT_ELEMENTS

    def waiting_for_stdin(self) -> bool:
        """Whether some cell is blocked in input() right now."""
        return any(e.get("channel") == "stdin" for c in self._cells.values() for e in c.console)

    def answer_stdin(self, text: str) -> tuple[str, list[dict[str, Any]]] | None:
        """Turn the pending prompt into console text; (cell id, its new console).

        None when no cell is waiting. The kernel itself never echoes an answer.
        """
        for cell_id, cell in self._cells.items():
            for i, entry in enumerate(cell.console):
                if entry.get("channel") != "stdin":
                    continue
                prompt = entry.get("data", "")
                shown = "" if entry.get("mimetype") == "text/password" else f" {text}"
                cell.console[i] = {
                    **entry,
                    "channel": "stdout",
                    "mimetype": "text/plain",
                    "data": f"{prompt}{shown}\n",
                }
                return cell_id, list(cell.console)
        return None

    # -- lifecycle -----------------------------------------------------------

    def set_code(self, code: dict[str, str]) -> None:
        """The room's current code per cell; cells missing from it are forgotten."""
        self._code = dict(code)
        for cell_id in [c for c in self._cells if c not in code]:
            del self._cells[cell_id]
            self._ran_code.pop(cell_id, None)
            self._registered_since_run.discard(cell_id)
        self._gc_ui()

    def update_code(self, code: dict[str, str]) -> None:
        """Merge code for some cells (a run carries only the cells it runs)."""
        self._code.update(code)

    def registered(self, cell_ids: list[str]) -> None:
        """The kernel took new code for these cells without running them."""
        self._registered_since_run.update(cell_ids)

    def is_current(self, cell_id: str, code: str) -> bool:
        """Whether the cell's last run in this kernel was of `code`, finished, and still holds.

        Not after an error, an interruption, stale inputs, or new code given in between.
        """
        cell = self._cells.get(cell_id)
        return (
            cell is not None
            and self._ran_code.get(cell_id) == code
            and cell_id not in self._registered_since_run
            and cell.status == "idle"
            and not cell.stale_inputs
            and not cell.errored
        )

    def _gc_ui(self) -> None:
        shown = set().union(*(c.ui for c in self._cells.values()))
        for object_id in [o for o in self._ui_shown if o not in shown]:
            del self._ui_shown[object_id]
            self._ui_values.pop(object_id, None)

    def busy(self) -> bool:
        """Whether any cell is queued or running."""
        return any(c.status in _ACTIVE for c in self._cells.values())

    def cells_with_state(self) -> list[str]:
        return list(self._cells)

    def clear(self) -> list[str]:
        """Forget every output (a new kernel); return the cells that had one."""
        had = list(self._cells)
        self._cells.clear()
        self._ui_values.clear()
        self._ui_shown.clear()
        self._models.clear()
        self._ran_code.clear()
        self._registered_since_run.clear()
        return had

    def stop_active(self) -> list[str]:
        """The kernel died: queued and running cells are idle now; return them."""
        while self.answer_stdin("") is not None:
            pass
        stopped = [cid for cid, c in self._cells.items() if c.status in _ACTIVE]
        for cell_id in stopped:
            self._cells[cell_id].status = "idle"
        return stopped

    def snapshot(self, status: str) -> dict[str, Any]:
        """The `kernel` field of a join response (PROTOCOL.md, "Running")."""
        outputs: dict[str, Any] = {}
        for cell_id in dict.fromkeys([*self._code, *self._cells]):
            cell = self._cells.get(cell_id) or _CellState()
            ran = self._ran_code.get(cell_id)
            edited = ran is not None and self._code.get(cell_id, ran) != ran
            state = cell.status or "idle"
            if state == "idle" and (cell.stale_inputs or edited):
                state = "stale"
            console = list(cell.console)
            if cell.console_dropped:
                notice = f"[{cell.console_dropped} earlier console output(s) dropped]\n"
                console.insert(0, {"channel": "stdout", "mimetype": "text/plain", "data": notice})
            outputs[cell_id] = {
                "output": cell.output,
                "console": console,
                "status": state,
                "stale_inputs": cell.stale_inputs,
                "edited": edited,
            }
        return {"status": status, "outputs": outputs, "ui_values": dict(self._ui_values),
                "models": {m: model.as_open() for m, model in self._models.items()}}
