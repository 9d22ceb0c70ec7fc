"""Hostile and malformed messages against a running server (hypothesis).

Invariants, checked after every message: the sender gets exactly one response (none for a
valid `cursor`), with the request's `id` (null when the id is unusable) and `ok` or a
documented error code; every frame the server sends is strict JSON; the server stays up; and
no document or cell changes unless the message was an accepted `change` or `cells` request.
A watcher peer and a fresh join must agree with the fuzzing peer's mirror at the end.
Short run here; `python benchmarks/chaos.py fuzz --messages 100000` runs the long one.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import math
import os
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from marimo_collab_ext.client import ws_url
from marimo_collab_ext.ot import ChangeSet
from marimo_collab_ext.ot.text import utf16_len

# docs/protocol.md, "Requests and responses". `internal` is documented too, but it means the
# server failed on an input it should have refused: the fuzzer counts it as a bug.
ERROR_CODES = {"bad_request", "invalid_change", "stale", "unknown_cell", "forbidden",
               "too_large", "rate_limited", "kernel_error"}
REQUESTS = ["join", "change", "pull", "cells", "heartbeat", "save", "run", "set_ui_value",
            "interrupt", "restart_kernel", "stdin", "history", "cell_history", "blame", "suggest",
            "accept_suggestion", "reject_suggestion", "restore_notebook"]
# Requests the server answers beside its message loop: their answer may come after later ones.
BACKGROUND = {"save", "run", "set_ui_value", "interrupt", "restart_kernel", "stdin"}
MAX_MESSAGE_BYTES = 256 * 1024
# Small limits, so that the fuzzer reaches them; no kernel can start (run answers kernel_error).
# The fuzzer's sockets are all the owner: its per-user rate is lifted with the per-socket one.
FUZZ_SETTINGS = {"kernel_python": "/nonexistent/python", "rate_limit": 1e9,
                 "rate_burst": 10**9, "user_rate_limit": 1e9, "user_rate_burst": 10**9,
                 "max_message_bytes": MAX_MESSAGE_BYTES,
                 "max_cell_units": 20_000, "max_notebook_units": 200_000, "max_cells": 40,
                 "autosave_delay": 0.5}


def strict_json(text: str | bytes) -> object:
    """Parse a frame as standard JSON: NaN and Infinity are not JSON."""
    def refuse(constant: str) -> object:
        raise AssertionError(f"the server sent non-standard JSON ({constant}): {text[:200]!r}")
    return json.loads(text, parse_constant=refuse)


def standard_json(frame: str | bytes) -> object:
    """The message a frame holds, or None when it is not standard JSON text.

    NaN, Infinity and numbers beyond a double (1e400) are not JSON; Python would accept them.
    """
    def refuse(_: str) -> object:
        raise ValueError

    def finite(text: str) -> float:
        if not math.isfinite(value := float(text)):
            raise ValueError
        return value

    if isinstance(frame, bytes):
        return None
    try:
        return json.loads(frame, parse_constant=refuse, parse_float=finite)
    except (ValueError, RecursionError):
        return None


def usable_id(value: object) -> bool:
    """docs/protocol.md: a request id is a string or an integer."""
    return (isinstance(value, str) and len(value) <= 256) or (
        isinstance(value, int) and not isinstance(value, bool))


@dataclass
class Mirror:
    """A joined peer that keeps every cell's text and version from the broadcasts it gets."""

    url: str
    token: str
    peer_id: str | None  # None: a socket that never joins
    docs: dict[str, str] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    session: str | None = None
    barriers: itertools.count = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.ws = ws_connect(self.url, additional_headers={"Authorization": f"token {self.token}"},
                             max_size=None, open_timeout=30, close_timeout=2,
                             ping_interval=None)  # an idle watcher must not time out
        if self.peer_id is None:
            return
        self.ws.send(json.dumps({"type": "join", "id": "join", "peer_id": self.peer_id}))
        while (response := strict_json(self.ws.recv(timeout=30)))["type"] != "response":
            pass
        assert response["status"] == "ok", response
        self.session = response["session"]
        self.docs = {c["id"]: c["code"] for c in response["notebook"]["cells"]}
        self.versions = {c["id"]: c["version"] for c in response["notebook"]["cells"]}

    def apply(self, frame: dict) -> None:
        if frame["type"] == "change":
            cid = frame["document_id"]
            assert frame["version"] == self.versions[cid], frame  # in order, none missed
            for update in frame["updates"]:
                self.docs[cid] = ChangeSet.from_json(update["changes"]).apply(self.docs[cid])
            self.versions[cid] += len(frame["updates"])
        elif frame["type"] == "cells":
            for op in frame["ops"]:
                if op["op"] == "create":
                    code = op["code"].replace("\r\n", "\n").replace("\r", "\n")
                    self.docs[op["cell_id"]], self.versions[op["cell_id"]] = code, 0
                elif op["op"] == "delete":
                    del self.docs[op["cell_id"]], self.versions[op["cell_id"]]

    def exchange(self, frame: str | bytes | None, late_reply: object = None) -> list[dict]:
        """Send `frame`, then a heartbeat; every frame the server sent before its answer.

        With `late_reply`, reading goes on until the response to that id came too.
        """
        barrier = f"\u2063barrier-{next(self.barriers)}"
        if frame is not None:
            self.ws.send(frame)
        self.ws.send(json.dumps({"type": "heartbeat", "id": barrier}))
        received = []
        waiting = {barrier} | ({late_reply} if late_reply is not None else set())
        for _ in range(100_000):
            message = strict_json(self.ws.recv(timeout=30))
            assert isinstance(message, dict) and isinstance(message.get("type"), str), message
            if message["type"] == "response" and message.get("in_reply") == barrier:
                assert message["status"] == "ok" or self.peer_id is None, message
            else:
                self.apply(message)
                received.append(message)
            if message["type"] == "response":
                waiting.discard(message.get("in_reply"))
            if not waiting:
                return received
        raise AssertionError("no answer to the barrier heartbeat")

    def close(self) -> None:
        self.ws.close()


# ---- what the fuzzer sends ------------------------------------------------------------------

ODD_INTS = st.sampled_from([-1, 2**31, 2**53 + 1, 2**63, 10**30, -(10**30), 10**300])
INTS = st.one_of(st.integers(-3, 50), st.integers(), ODD_INTS)
ODD_TEXT = st.sampled_from(["\ud800", "a\udc00b", "😀", "👩\u200d💻", "中文", "\n", "\r\n", "\r",
                            "\x00", "\u2028", "", "server", "x" * 300])
TEXTS = st.one_of(st.text(max_size=20), ODD_TEXT)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, st.floats(), TEXTS)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXTS, inner, max_size=4)), max_leaves=12)
TYPES = st.one_of(st.sampled_from([*REQUESTS, "cursor"]), st.sampled_from(["bogus", "", "JOIN"]),
                  SCALARS)
IDS = st.one_of(st.integers(), TEXTS, SCALARS, JSON_VALUES)
CHANGESET_PARTS = st.one_of(INTS, st.floats(), st.booleans(), TEXTS, st.none(),
                            st.lists(st.one_of(INTS, TEXTS, st.floats(), st.booleans()),
                                     max_size=4))
JUNK_FRAMES = st.one_of(
    st.text(max_size=50), st.binary(max_size=50),
    st.sampled_from(["null", "[]", '"x"', "1", "NaN", "{}", '{"type": 5}', '{"type": null}',
                     '{"type": "heartbeat", "id": NaN}', '{"type": "bogus", "id": Infinity}',
                     '{"type": "cursor", "id": -Infinity, "document_id": 1}',
                     '{"type": "heartbeat", "id": 1e400}', '{"type": "bogus", "id": 1e400}',
                     '{"type": "heartbeat", "id": ' + "9" * 5000 + "}",
                     '{"type": "heartbeat", "id": "\\ud800"}', '{"type": "heartbeat"} trailing',
                     '{"type": "heartbeat", "id": 1, "id": 2}']),
    st.integers(1, 120_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 60_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
)
CHARS = st.sampled_from(["a", "Z", " ", "\n", "\r\n", "中", "😀", "👩\u200d💻", "é", "\t",
                         "\ud83d"])


@dataclass
class Sent:
    frame: str | bytes
    message: object  # the parsed message, or None for frames that are not JSON objects
    valid_edit: bool = False  # built to be accepted: the answer must be ok
    oversize: bool = False  # larger than max_message_bytes (set when sent)


def _choice(data: st.DataObject, options: list, label: str) -> object:
    # Strategies must not depend on the server's state (hypothesis replays choice sequences),
    # so state-dependent picks are taken from a fixed-range integer.
    return options[data.draw(st.integers(0, 2**16), label=label) % len(options)]


def _upto(data: st.DataObject, limit: int, label: str) -> int:
    return data.draw(st.integers(0, 2**24), label=label) % (limit + 1)


def build_message(data: st.DataObject, mirror: Mirror, ids: itertools.count) -> Sent:
    """One hostile (sometimes valid) message, drawn against the mirror's current cells."""
    cells = list(mirror.docs) or ["no-cell-left"]
    cell_ids = st.one_of(st.integers(0, 2**16).map(lambda i: cells[i % len(cells)]), TEXTS,
                         SCALARS)
    kind = data.draw(st.sampled_from(
        ["junk", "json", "typed", "typed", "typed", "valid_edit", "valid_edit", "specs_edit",
         "bad_edit", "bad_edit", "cells", "cursor", "oversize"]), label="kind")
    if kind == "oversize" and data.draw(st.integers(0, 9)):  # rare: the socket is closed
        kind = "typed"
    if kind == "junk":
        frame = data.draw(JUNK_FRAMES, label="frame")
        return Sent(frame, None)
    if kind == "json":
        value = data.draw(JSON_VALUES, label="value")
        return Sent(json.dumps(value), value)
    if kind == "oversize":
        message = {"type": "heartbeat", "id": next(ids), "pad": "x" * (MAX_MESSAGE_BYTES + 10)}
        return Sent(json.dumps(message), message)
    if kind in ("valid_edit", "specs_edit"):
        cid = _choice(data, cells, "cell")
        doc = mirror.docs.get(cid, "")
        length = utf16_len(doc)
        start = _upto(data, length, "from")
        removed = _upto(data, min(6, length - start), "removed")
        insert = "".join(data.draw(st.lists(CHARS, max_size=6), label="insert"))
        big = data.draw(st.integers(0, 40), label="big") == 0
        if big:  # past max_cell_units (yet within max_message_bytes): too_large
            insert = "x" * 20_001
        if kind == "specs_edit":
            changes: object = [{"from": start, "to": start + removed, "insert": insert}]
        else:
            lines = insert.replace("\r\n", "\n").split("\n")
            # CodeMirror's own (normalised) form: no empty parts, kept lengths merged
            keep_after = length - start - removed
            if insert or removed:
                changes = ([start] if start else []) + [[removed, *lines] if insert else [removed]]
                changes += [keep_after] if keep_after else []
            else:
                changes = [length] if length else []
        message = {"type": "change", "id": next(ids), "document_id": cid,
                   "version": mirror.versions.get(cid, 0),
                   "updates": [{"clientID": data.draw(st.sampled_from(["f1", "f2", "😀"])),
                                "changes": changes}]}
        return Sent(json.dumps(message), message,
                    valid_edit=cid in mirror.docs and not big)
    if kind == "bad_edit":
        cid = data.draw(st.one_of(st.integers(0, 2**16).map(lambda i: cells[i % len(cells)]),
                                  cell_ids), label="cell")
        version = data.draw(st.one_of(
            st.just(mirror.versions.get(cid, 0) if isinstance(cid, str) else 0), INTS, SCALARS))
        updates = data.draw(st.one_of(
            st.lists(st.fixed_dictionaries({
                "clientID": st.one_of(st.sampled_from(["f1", "f2", "server", ""]), SCALARS),
                "changes": st.one_of(st.lists(CHANGESET_PARTS, max_size=5),
                                     st.lists(st.dictionaries(
                                         st.sampled_from(["from", "to", "insert"]), SCALARS),
                                         max_size=3), JSON_VALUES)}), max_size=3),
            JSON_VALUES), label="updates")
        if data.draw(st.booleans(), label="well addressed"):  # only the change set is wrong
            cid = _choice(data, cells, "cell")
            version = mirror.versions.get(cid, 0)
            updates = [{"clientID": "f1", "changes": data.draw(st.one_of(
                st.lists(CHANGESET_PARTS, max_size=5), JSON_VALUES), label="changes")}]
        message = {"type": "change", "id": next(ids), "document_id": cid, "version": version,
                   "updates": updates}
        return Sent(json.dumps(message), message)
    if kind == "cells":
        op = st.fixed_dictionaries({"op": st.one_of(st.sampled_from(
            ["create", "delete", "move", "rename", "config", "bogus"]), SCALARS)}, optional={
            "cell_id": cell_ids, "after": st.one_of(st.none(), cell_ids),
            "code": st.one_of(TEXTS, SCALARS), "name": st.one_of(
                st.sampled_from(["_", "f", "my_cell", "1bad", "class"]), TEXTS, SCALARS),
            "config": st.one_of(st.dictionaries(st.sampled_from(
                ["hide_code", "disabled", "column", "bogus"]), SCALARS, max_size=2), JSON_VALUES)})
        message = {"type": "cells", "id": next(ids),
                   "structure_version": data.draw(INTS, label="structure_version"),
                   "ops": data.draw(st.one_of(st.lists(op, max_size=3), JSON_VALUES), label="ops")}
        return Sent(json.dumps(message), message)
    if kind == "cursor":
        fields = {"document_id": cell_ids, "version": INTS, "anchor": INTS, "head": INTS,
                  "cell": cell_ids, "line": INTS, "column": INTS, "id": IDS}
        message = {"type": "cursor", **data.draw(st.fixed_dictionaries({}, optional=fields))}
        return Sent(json.dumps(message), message)
    # "typed": every message type with random fields
    fields = {"id": IDS, "document_id": cell_ids, "version": st.one_of(INTS, SCALARS),
              "updates": JSON_VALUES, "peer_id": st.one_of(TEXTS, SCALARS),
              "session": st.one_of(st.just(mirror.session), TEXTS, SCALARS),
              "versions": st.one_of(st.dictionaries(cell_ids, INTS, max_size=3), JSON_VALUES),
              "ops": JSON_VALUES, "cell_ids": st.one_of(st.lists(cell_ids, max_size=3),
                                                        JSON_VALUES),
              "object_id": st.one_of(TEXTS, SCALARS), "value": JSON_VALUES,
              "text": st.one_of(TEXTS, SCALARS), "structure_version": INTS}
    message = {"type": data.draw(TYPES, label="type"),
               "id": data.draw(st.one_of(st.integers().map(lambda _: next(ids)), IDS),
                               label="id"),
               **data.draw(st.fixed_dictionaries({}, optional=fields), label="fields")}
    if message["type"] in BACKGROUND and usable_id(message["id"]):
        message["id"] = f"background-{next(ids)}"  # answered late: the id must be unique
    return Sent(json.dumps(message), message)


# ---- the checks ---------------------------------------------------------------------------


@dataclass
class FuzzStats:
    messages: int = 0
    ok: int = 0
    accepted_edits: int = 0
    reconnects: int = 0
    codes: dict[str, int] = field(default_factory=dict)


def check_answer(sent: Sent, frames: list[dict], stats: FuzzStats) -> None:
    """The invariants of one message (see the module docstring)."""
    responses = [f for f in frames if f["type"] == "response"]
    edits = [f for f in frames if f["type"] in ("change", "cells")]
    message = standard_json(sent.frame)
    is_object = isinstance(message, dict) and isinstance(message.get("type"), str)
    if not is_object:
        assert len(responses) == 1, (sent.frame[:300], responses)
        assert responses[0]["in_reply"] is None and responses[0]["status"] == "error"
        assert responses[0]["error"]["code"] == "bad_request", responses
    else:
        expected_id = message.get("id") if usable_id(message.get("id")) else None
        if message["type"] == "cursor":
            assert len(responses) <= 1, responses
        else:
            assert len(responses) == 1, (sent.frame[:300], responses)
        for response in responses:
            assert response["in_reply"] == expected_id, (sent.frame[:300], response)
            if message["type"] == "cursor":
                assert response["status"] == "error", response
    for response in responses:
        if response["status"] == "ok":
            stats.ok += 1
            stats.codes["ok"] = stats.codes.get("ok", 0) + 1
        else:
            assert response["status"] == "error", response
            code = response["error"]["code"]
            assert code in ERROR_CODES, (sent.frame[:300], response)
            stats.codes[code] = stats.codes.get(code, 0) + 1
    accepted = bool(responses) and responses[0]["status"] == "ok"
    if edits:
        assert is_object and message["type"] in ("change", "cells") and accepted, (
            "the documents changed under a refused message", sent.frame[:300], edits)
        stats.accepted_edits += len(edits)
    if sent.valid_edit:
        assert accepted, (sent.frame[:300], responses)


class ProtocolFuzzer:
    """A fuzzing peer and a watcher peer on one notebook of a running server."""

    def __init__(self, server_url: str, token: str, path: str) -> None:
        self.url, self.token = ws_url(server_url, path), token
        self.peers = itertools.count()
        self.fuzz = Mirror(self.url, token, f"fuzz-{os.getpid()}-{next(self.peers)}")
        self.watcher = Mirror(self.url, token, f"watch-{os.getpid()}")
        self.ids = itertools.count(1)
        self.stats = FuzzStats()
        self.recent: collections.deque = collections.deque(maxlen=5)
        self.failure: Exception | None = None
        self.stranger: Mirror | None = None

    def send(self, sent: Sent, stranger: bool = False) -> None:
        """Send on the joined socket or, with `stranger`, on one that never joined."""
        self.stats.messages += 1
        self.recent.append(sent.frame[:300])
        try:
            if stranger:
                self._send_unjoined(sent)
            else:
                self._send(sent)
        except (AssertionError, ConnectionClosed, TimeoutError) as exc:
            raise AssertionError(
                f"{exc!r} after these frames (oldest first): {list(self.recent)}") from exc

    def _send(self, sent: Sent) -> None:
        frame = sent.frame if isinstance(sent.frame, bytes) else sent.frame.encode(
            "utf-8", "surrogatepass")
        sent.oversize = len(frame) > MAX_MESSAGE_BYTES
        message = standard_json(sent.frame)
        late = None
        if isinstance(message, dict) and str(message.get("type")) in BACKGROUND and usable_id(
                message.get("id")):
            late = message["id"]
        try:
            frames = self.fuzz.exchange(sent.frame, late)
        except ConnectionClosed as exc:
            # Only a frame over max_message_bytes may close the socket: tornado sends 1009 and
            # drops the connection at once, so the client may see a reset before that frame.
            assert sent.oversize and (exc.rcvd is None or exc.rcvd.code == 1009), exc
            self.reconnect()
            return
        assert not sent.oversize or any(
            f.get("error", {}).get("code") == "too_large" for f in frames), frames
        check_answer(sent, frames, self.stats)

    def _send_unjoined(self, sent: Sent) -> None:
        message = standard_json(sent.frame)
        if isinstance(message, dict) and str(message.get("type")) == "join" or len(
                sent.frame) > 1000:
            return self._send(sent)  # a stranger that joins is no stranger; no big frames
        if self.stranger is None:
            self.stranger = Mirror(self.url, self.token, None)
        frames = self.stranger.exchange(sent.frame)
        responses = [f for f in frames if f["type"] == "response"]
        assert len(responses) <= 1 if isinstance(message, dict) and message.get(
            "type") == "cursor" else len(responses) == 1, (sent.frame[:300], frames)
        assert all(r["status"] == "error" and r["error"]["code"] == "bad_request"
                   for r in responses), (sent.frame[:300], frames)
        assert not [f for f in frames if f["type"] != "response"], frames
        self.stats.codes["bad_request"] = self.stats.codes.get("bad_request", 0) + 1

    def reconnect(self) -> None:
        """A fresh peer: the server is up and holds exactly the mirrored documents."""
        before = self.fuzz
        self.fuzz = Mirror(self.url, self.token, f"fuzz-{os.getpid()}-{next(self.peers)}")
        self.stats.reconnects += 1
        assert self.fuzz.session == before.session
        assert self.fuzz.docs == before.docs and self.fuzz.versions == before.versions

    def finish(self) -> None:
        """The watcher and a fresh join agree with the fuzzing peer's mirror."""
        self.fuzz.exchange(None)
        self.watcher.exchange(None)
        fresh = Mirror(self.url, self.token, f"fresh-{os.getpid()}")
        try:
            assert self.watcher.docs == self.fuzz.docs == fresh.docs
            assert self.watcher.versions == self.fuzz.versions == fresh.versions
        finally:
            fresh.close()
            if self.stranger is not None:
                self.stranger.close()
            self.fuzz.close()
            self.watcher.close()

    def run(self, messages: int, per_example: int = 25) -> FuzzStats:
        """Send about `messages` hypothesis-drawn messages, `per_example` per example."""
        # The server's state carries over between examples, so no replay and no shrinking:
        # a failure names the frames that led to it instead.
        @settings(max_examples=max(1, math.ceil(messages / per_example)), deadline=None,
                  database=None, suppress_health_check=list(HealthCheck),
                  phases=[Phase.generate])
        @given(st.data())
        def fuzz(data: st.DataObject) -> None:
            for _ in range(per_example):
                sent = build_message(data, self.fuzz, self.ids)  # drawn alike after a failure
                stranger = data.draw(st.integers(0, 19), label="stranger") == 0
                if self.failure is None:
                    try:
                        if self.stats.messages % 500 == 499:
                            self.watcher.exchange(None)  # keep up with the broadcasts
                        self.send(sent, stranger)
                    except Exception as exc:  # not raised here: hypothesis would replay
                        self.failure = exc  # the example on a server that has moved on

        fuzz()
        if self.failure is not None:
            raise self.failure
        self.finish()
        return self.stats


async def test_hostile_messages_get_one_documented_answer_and_change_nothing(server, notebook):
    def fuzz() -> FuzzStats:  # blocking sockets, off the loop that runs the server
        return ProtocolFuzzer(server["url"], server["token"], notebook).run(2500)

    stats = await asyncio.to_thread(fuzz)
    assert stats.messages >= 2500
    assert stats.accepted_edits > 100  # the valid edits among them went through
    assert {"bad_request", "invalid_change", "unknown_cell", "too_large"} <= set(stats.codes)
    print(f"fuzz: {stats}")


@pytest.fixture
def collab_settings() -> dict:
    return dict(FUZZ_SETTINGS)
