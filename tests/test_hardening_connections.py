"""Connection budgets (issue #14): slow readers, many sockets of one person, cursor floods,
Origin with `?token=`, and the close code of an oversized frame (docs/security.md, "Limits")."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, websocket_connect
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from marimo_collab_ext.client import CollabClient, ws_url

from .servers import ServerProcess

PEOPLE = ["--ServerApp.identity_provider_class=tests.identities.TokenPerPerson",
          "--ServerApp.authorizer_class=tests.identities.RightsPerPerson"]
MB = 1 << 20


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def notebook_text(cells: list[str]) -> str:
    body = "".join(f"\n\n@app.cell\ndef _():\n    {code}\n    return\n" for code in cells)
    return ('import marimo\n\n__generated_with = "0.25.2"\napp = marimo.App()\n' + body
            + '\n\nif __name__ == "__main__":\n    app.run()\n')


def big_notebook(megabytes: int) -> str:
    """About `megabytes` MB of code, in cells of 100 kB."""
    return notebook_text([f's{i} = "{"a" * 100_000}"' for i in range(megabytes * 10)])


class StalledPeer:
    """A raw socket that upgrades, sends frames, and never reads what the server sends."""

    def __init__(self, port: int, path: str, token: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /api/marimo-collab/ws?path={path} HTTP/1.1\r\n"
                           f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\nAuthorization: token {token}\r\n\r\n"
                           ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, "the upgrade was refused"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, message: dict) -> None:
        payload, mask = json.dumps(message).encode(), os.urandom(4)
        size = len(payload)
        header = bytes([0x81]) + (bytes([0x80 | size]) if size < 126 else
                                  bytes([0x80 | 126]) + struct.pack("!H", size))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def close(self) -> None:
        self.sock.close()


def start(tmp_path: Path, files: dict[str, str], collab: dict | None = None,
          people: bool = False) -> ServerProcess:
    root, journal = tmp_path / "root", tmp_path / "journal"
    root.mkdir()
    journal.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    return ServerProcess(root, journal, collab, extra_args=PEOPLE if people else None).start()


async def settled_rss(pid: int, seconds: float = 3.0) -> int:
    """RSS once it stops growing for a while (the server is done answering)."""
    last, stable_since = rss_bytes(pid), time.monotonic()
    while time.monotonic() - stable_since < seconds:
        await asyncio.sleep(0.25)
        now = rss_bytes(pid)
        if abs(now - last) > MB:
            last, stable_since = now, time.monotonic()
    return last


# ---- 1. slow readers -------------------------------------------------------------------


async def test_stalled_joiners_of_a_big_notebook_cannot_pin_it_many_times(tmp_path):
    # 40 sockets that join a 7 MB notebook and never read held +275 MB until they closed.
    server = start(tmp_path, {"big.py": big_notebook(7)},
                   # 40 sockets of the owner: the per-user socket cap is not under test here
                   {"max_queued_bytes_per_user": 16 * MB, "max_connections_per_user": 100})
    stalled: list[StalledPeer] = []
    try:
        watcher = await CollabClient.connect(server.url, "big.py", token=server.token)
        await watcher.close()  # the room stays loaded (room_idle_timeout) and warm
        before = await settled_rss(server.proc.pid, 1.0)
        for i in range(40):
            peer = await asyncio.to_thread(StalledPeer, server.port, "big.py", server.token)
            peer.send({"type": "join", "id": 1, "peer_id": f"stalled-{i}"})
            stalled.append(peer)
        grown = await settled_rss(server.proc.pid) - before
        assert grown < 100 * MB, f"{grown / MB:.0f} MB held for 40 stalled joiners"
        # the server still answers others
        fresh = await CollabClient.connect(server.url, "big.py", token=server.token)
        assert len(fresh.order) == 70
        await fresh.close()
    finally:
        for peer in stalled:
            peer.close()
        server.stop()


async def test_stalled_viewer_is_dropped_while_a_runner_prints(tmp_path):
    # One viewer that stopped reading while a runner printed 100 MB held all of it.
    code = 'for _i in range(60): print("x" * 1_000_000)'
    server = start(tmp_path, {"print.py": notebook_text([code])},
                   {"max_queued_bytes": 8 * MB, "max_output_bytes": 2 * MB}, people=True)
    try:
        rita = await CollabClient.connect(server.url, "print.py", token="rita-token")
        viewer = await asyncio.to_thread(StalledPeer, server.port, "print.py", "vera-token")
        viewer.send({"type": "join", "id": 1, "peer_id": "stalled-viewer"})
        await rita.next_event(lambda e: e["type"] == "presence" and e["event"] == "join")
        before = rss_bytes(server.proc.pid)
        left, idle = asyncio.Event(), asyncio.Event()
        rita.listeners.append(lambda e: left.set() if e["type"] == "presence" and e["event"]
                              == "leave" and e["peer"]["peer_id"] == "stalled-viewer" else None)
        rita.listeners.append(lambda e: idle.set() if e["type"] == "kernel_status"
                              and e["status"] == "idle" else None)
        await rita.run(rita.order)
        # 45 s: jupyter_server's own pings drop a socket that does not answer after about 60 s
        await asyncio.wait_for(asyncio.gather(left.wait(), idle.wait()), 45)
        grown = await settled_rss(server.proc.pid) - before
        assert grown < 60 * MB, f"{grown / MB:.0f} MB held after 60 MB of prints"
        await rita.close()
        viewer.close()
    finally:
        server.stop()


# ---- 2. many sockets of one person, cursor floods --------------------------------------


@pytest.fixture
def collab_settings(request):
    if request.node.name == "test_one_user_may_open_only_so_many_sockets":
        return {"max_connections_per_user": 3}
    if request.node.name == "test_one_users_sockets_share_one_rate_limit":
        return {"rate_burst": 1000, "user_rate_limit": 0.001, "user_rate_burst": 50}
    if request.node.name == "test_a_socket_far_past_its_rate_for_seconds_is_closed":
        return {"rate_limit": 20, "rate_burst": 20}
    return {}


async def test_one_user_may_open_only_so_many_sockets(server, notebook):
    url = ws_url(server["url"], notebook)
    headers = {"Authorization": f"token {server['token']}"}
    open_ = [await ws_connect(url, additional_headers=headers) for _ in range(3)]
    with pytest.raises(InvalidStatus) as refused:
        await ws_connect(url, additional_headers=headers)
    assert refused.value.response.status_code == 429
    await open_.pop().close()
    await asyncio.sleep(0.2)
    open_.append(await ws_connect(url, additional_headers=headers))  # a freed slot is usable
    for ws in open_:
        await ws.close()


async def test_default_cap_refuses_hundreds_of_sockets_of_one_user(server, notebook):
    # 300 sockets of one viewer were accepted in 3 s.
    url = ws_url(server["url"], notebook)
    headers = {"Authorization": f"token {server['token']}"}
    opened, refused = [], 0
    for _ in range(40):
        try:
            opened.append(await ws_connect(url, additional_headers=headers))
        except InvalidStatus as exc:
            assert exc.response.status_code == 429
            refused += 1
    assert len(opened) == 32 and refused == 8
    for ws in opened:
        await ws.close()


FLOOD = r"""
import asyncio, json, sys, time
from websockets.asyncio.client import connect
url, token = sys.argv[1], sys.argv[2]
sockets, rate, seconds = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])

async def flood(i):
    # never reads what is relayed to it: the cheapest flood for this process
    ws = await connect(url, additional_headers={"Authorization": f"token {token}"},
                       max_size=None)
    await ws.send(json.dumps({"type": "join", "id": 1, "peer_id": f"flood-{i}"}))
    cell = json.loads(await ws.recv())["notebook"]["cells"][0]["id"]
    print("ready", flush=True)
    start, sent = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        sent += 1
        await ws.send(json.dumps({"type": "cursor", "document_id": cell, "version": 0,
                                  "anchor": sent % 5, "head": sent % 5}))
        await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
    await ws.close()

async def main():
    await asyncio.gather(*(flood(i) for i in range(sockets)))

asyncio.run(main())
"""


async def test_cursor_relays_do_not_grow_with_a_flooders_rate(tmp_path):
    # 30 sockets of one viewer, each under its own rate limit, relayed 1.8 M cursor frames in
    # 8 s and slowed the runner's heartbeat from 0.4 ms to 1.8 s: every cursor went to everyone.
    server = start(tmp_path, {"demo.py": notebook_text(["x = 1"])}, people=True)
    flood = None
    try:
        rita = await CollabClient.connect(server.url, "demo.py", token="rita-token")
        for _ in range(20):  # warm
            await rita.request({"type": "heartbeat"})
        sockets, seconds = 4, 6.0  # 4 x 200 cursors/s: more than one user may send (600/s)
        flood = await asyncio.create_subprocess_exec(
            sys.executable, "-c", FLOOD, ws_url(server.url, "demo.py"), "vera-token",
            str(sockets), "200", str(seconds), stdout=subprocess.PIPE)
        for _ in range(sockets):
            assert await flood.stdout.readline() == b"ready\n"
        cursors = []
        rita.listeners.append(lambda e: cursors.append(e) if e["type"] == "cursor" else None)
        rtts, began = [], time.monotonic()
        while time.monotonic() - began < seconds - 1:
            sent = time.perf_counter()
            await rita.request({"type": "heartbeat"})
            rtts.append(time.perf_counter() - sent)
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - began
        per_peer = len(cursors) / elapsed / sockets
        median = statistics.median(rtts)
        print(f"heartbeat rtt median {median * 1000:.1f} ms over {len(rtts)};"
              f" {len(cursors)} cursor relays in {elapsed:.1f} s ({per_peer:.1f}/s per peer)")
        assert per_peer < 30, per_peer  # cursor_interval 50 ms: about 20 per second
        # ... and per person: vera's 4 sockets cost the room what one tab costs
        assert len(cursors) / elapsed < 30, len(cursors) / elapsed
        # A generous bound: this machine is shared; the unfixed server reached 1.8 s.
        assert median < 0.5, median
        await rita.close()
    finally:
        if flood is not None and flood.returncode is None:
            flood.kill()
            await flood.wait()
        server.stop()


async def test_one_users_sockets_share_one_rate_limit(server, notebook):
    url = ws_url(server["url"], notebook)
    headers = {"Authorization": f"token {server['token']}"}
    sockets = [await ws_connect(url, additional_headers=headers) for _ in range(2)]
    for ws in sockets:  # 40 each: under the per-connection burst, over the user's 50 together
        for i in range(40):
            await ws.send(json.dumps({"type": "heartbeat", "id": i}))
    codes = []
    for ws in sockets:
        for _ in range(40):
            codes.append(json.loads(await ws.recv()).get("error", {}).get("code", "ok"))
        await ws.close()
    # (unjoined, the passed ones are `bad_request`: the rate is checked before anything else)
    assert codes.count("rate_limited") == 30, codes


async def test_a_socket_far_past_its_rate_for_seconds_is_closed(server, notebook):
    # Each refusal is answered, and answering costs as much as the request: a flooder that
    # ignores `rate_limited` is closed (1008) instead of taking the room's CPU for good.
    from websockets.exceptions import ConnectionClosed
    url = ws_url(server["url"], notebook)
    headers = {"Authorization": f"token {server['token']}"}
    async with ws_connect(url, additional_headers=headers) as ws:
        async def drain() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for _ in ws:
                    pass
        reader = asyncio.ensure_future(drain())
        began, sent = time.monotonic(), 0
        with pytest.raises(ConnectionClosed):
            while time.monotonic() - began < 15:  # 10x its rate of 20/s
                await ws.send(json.dumps({"type": "heartbeat", "id": sent}))
                sent += 1
                await asyncio.sleep(0.005)
        await asyncio.wait_for(reader, 10)
        assert ws.close_code == 1008, (ws.close_code, ws.close_reason)
        assert time.monotonic() - began < 8  # three seconds over, not the whole flood
    other = await CollabClient.connect(server["url"], notebook, token=server["token"])
    await other.close()  # the server and the room are fine


# ---- 3. Origin with ?token=, and close code 1009 ------------------------------------------


async def test_token_in_the_url_does_not_skip_the_origin_check(server, notebook, jp_http_port):
    url = ws_url(server["url"], notebook) + f"&token={server['token']}"
    host = f"127.0.0.1:{jp_http_port}"
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(HTTPRequest(url, headers={"Origin": "http://evil.example"}))
    assert refused.value.code == 403
    for headers in ({}, {"Origin": f"http://{host}"}):  # a script; the server's own pages
        ws = await websocket_connect(HTTPRequest(url, headers=headers))
        ws.close()


async def test_oversized_frame_closes_with_1009(tmp_path):
    # The server used to drop the socket while the client was still sending the frame: the
    # reset made tornado's client lose the close frame (close_code None). A subprocess server:
    # in the test's own event loop the race does not show.
    server = start(tmp_path, {"demo.py": notebook_text(["x = 1"])}, {"max_message_bytes": MB})
    codes = []
    try:
        for _ in range(3):
            ws = await websocket_connect(HTTPRequest(
                ws_url(server.url, "demo.py"),
                headers={"Authorization": f"token {server.token}"}), max_message_size=1 << 30)
            with contextlib.suppress(WebSocketClosedError, StreamClosedError):
                await ws.write_message("x" * (16 * MB))
            assert await ws.read_message() is None
            codes.append(ws.close_code)
    finally:
        server.stop()
    assert codes == [1009] * 3
