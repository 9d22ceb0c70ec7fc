"""Raw WebSocket clients for bench_lecture.py: a crowd of viewers, stalled sockets, a flood.

Standard library only (a hand-rolled WebSocket client), so one program talks to ours and to
jupyter-collaboration alike. Run as `python -m benchmarks.rawclients '<json config>'`:
it connects and joins, says {"ready"}, floods from {"start"} until {"stop"}, then reports.

- A crowd viewer joins (ours: `join`; jc: sync step 1) and reads every frame as it comes,
  answering pings, without parsing or applying anything: the server's work for a viewer at a
  fraction of a full client's cost, so hundreds fit on two cores next to the measured clients.
- A stalled socket completes the handshake and the join, then never reads again: its receive
  buffer is made small and the event loop stops reading it, so what the server sends it piles
  up in the server (or the server closes it).
- A flooder joins, reads what comes (answering pings, as a browser does), and sends cursor
  moves as fast as the server takes them (ours: MEP 6 `cursor`; jc: awareness updates with a
  fresh clock each).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import socket
import sys
import time

from .workload import emit, read_line


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One final, masked client frame (RFC 6455 5.2)."""
    n, key = len(payload), os.urandom(4)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    mask = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return head + key + (int.from_bytes(payload, "big") ^ mask).to_bytes(n, "big")


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(opcode, payload) of the next server frame."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    if b1 & 0x80:
        await reader.readexactly(4)  # servers do not mask; tolerate it anyway
    return b0 & 0x0F, await reader.readexactly(n)


def varuint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def awareness_message(client_id: int, clock: int, state: dict) -> bytes:
    """y-protocols awareness message: [1, varUint8Array(update)] with one client's state."""
    text = json.dumps(state).encode()
    update = varuint(1) + varuint(client_id) + varuint(clock) + varuint(len(text)) + text
    return bytes([1]) + varuint(len(update)) + update


class Socket:
    """One raw WebSocket connection; `refused` holds the HTTP status when the upgrade failed."""

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.refused: int | None = None
        self.close_code: int | None = None
        self.received = 0

    async def open(self, host: str, port: int, resource: str, token: str,
                   rcvbuf: int | None = None) -> bool:
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=2**22)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write((f"GET {resource} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Authorization: token {token}\r\n\r\n").encode())
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.refused = 0  # hung up during the handshake
            self.writer.close()
            return False
        status = int(head.split()[1])
        if status != 101:
            self.refused = status
            self.writer.close()
            return False
        return True

    def send(self, payload: bytes, opcode: int = 0x1) -> None:
        self.writer.write(frame(payload, opcode))

    async def next(self) -> tuple[int, bytes]:
        opcode, payload = await read_frame(self.reader)
        self.received += 1
        if opcode == 0x8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        return opcode, payload

    async def discard(self) -> None:
        """Read and drop every frame until the server closes; answer pings."""
        buf = bytearray()
        try:
            while self.close_code is None:
                chunk = await self.reader.read(1 << 16)
                if not chunk:
                    break
                buf += chunk
                del buf[:self._frames(buf)]
        except ConnectionError:
            pass
        if self.close_code is None:
            self.close_code = 1006

    def _frames(self, buf: bytearray) -> int:
        """Handle the whole frames at the start of `buf`; how many bytes they took."""
        pos = 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n, head = b1 & 0x7F, 2
            if n >= 126:
                head = 4 if n == 126 else 10
                if len(buf) - pos < head:
                    break
                n = int.from_bytes(buf[pos + 2:pos + head], "big")
            head += 4 if b1 & 0x80 else 0
            if len(buf) - pos < head + n:
                break
            opcode, payload = b0 & 0x0F, bytes(buf[pos + head:pos + head + n])
            self.received += 1
            if opcode == 0x9:
                self.send(payload, 0xA)  # pong, or Jupyter's ping timeout closes us
            elif opcode == 0x8:
                self.close_code = int.from_bytes(payload[:2], "big") if n >= 2 else 1005
            pos += head + n
        return pos

    @property
    def closed(self) -> bool:
        return self.close_code is not None or self.writer.is_closing()


async def join(cfg: dict, sock: Socket) -> str | None:
    """The join message; for ours, wait for its answer and return the first cell's id."""
    if cfg["kind"] == "jc":
        sock.send(bytes([0, 0, 1, 0]), 0x2)  # sync step 1 with an empty state vector
        return None
    sock.send(json.dumps({"type": "join", "id": 1,
                          "peer_id": os.urandom(16).hex()}).encode())
    if cfg.get("stall"):
        return None
    while True:
        try:
            opcode, payload = await sock.next()
        except (asyncio.IncompleteReadError, ConnectionError):
            sock.close_code = 1006  # a server that caps connections may just hang up
            return None
        if opcode == 0x8:
            return None
        if opcode == 0x1:
            message = json.loads(payload)
            if message.get("in_reply") == 1:
                cells = message.get("notebook", {}).get("cells") or [{}]
                return cells[0].get("id")


async def flood(cfg: dict, sock: Socket, cell: str | None, stop: asyncio.Event,
                counts: dict) -> None:
    client_id, clock = random.getrandbits(31), 0
    while not stop.is_set() and not sock.closed:
        clock += 1
        if cfg["kind"] == "jc":
            sock.send(awareness_message(client_id, clock, {
                "user": {"name": "mallory"}, "cursor": {"anchor": clock % 7, "head": clock % 7}}),
                0x2)
        else:
            sock.send(json.dumps({"type": "cursor", "cell": cell, "line": 1,
                                  "column": 0}).encode())
        counts["sent"] += 1
        try:
            await sock.writer.drain()  # as fast as the server reads, no faster
        except ConnectionError:
            break
        if clock % 20 == 0:
            await asyncio.sleep(0)  # drain() does not yield while the buffer is low


async def open_crowd(cfg: dict, tokens: list[str]) -> list[Socket]:
    """Viewers that join and then read everything (50 handshakes at a time)."""
    crowd, gate = [Socket() for _ in tokens], asyncio.Semaphore(50)

    async def one(sock: Socket, token: str) -> None:
        async with gate:
            if await sock.open(cfg["host"], cfg["port"], cfg["resource"], token):
                await join({**cfg, "stall": True}, sock)  # the answer is read with the rest

    await asyncio.gather(*(one(s, t) for s, t in zip(crowd, tokens, strict=True)))
    return crowd


async def main(cfg: dict) -> None:
    host, port, resource = cfg["host"], cfg["port"], cfg["resource"]
    crowd = await open_crowd(cfg, cfg.get("crowd_tokens", []))
    stalled = [Socket() for _ in cfg["stalled_tokens"]]
    flooders = [Socket() for _ in range(cfg["flooders"])]
    for sock, token in zip(stalled, cfg["stalled_tokens"], strict=True):
        if await sock.open(host, port, resource, token, rcvbuf=4096):
            await join({**cfg, "stall": True}, sock)
            await sock.writer.drain()
            sock.writer.transport.pause_reading()  # never read again
    cells: list[str | None] = []
    for sock in flooders:
        if await sock.open(host, port, resource, cfg["flood_token"]):
            cells.append(await join(cfg, sock))
        else:
            cells.append(None)
    readers = [asyncio.ensure_future(s.discard()) for s in flooders + crowd
               if s.refused is None]
    emit({"ready": True, "crowd_open": sum(s.refused is None for s in crowd),
          "stalled_open": sum(s.refused is None for s in stalled),
          "flooders_open": sum(s.refused is None and not s.closed for s in flooders)})
    await read_line()  # start
    stop, counts, began = asyncio.Event(), {"sent": 0}, time.monotonic()
    floods = [asyncio.ensure_future(flood(cfg, s, c, stop, counts))
              for s, c in zip(flooders, cells, strict=True) if s.refused is None and not s.closed]
    await read_line()  # stop
    stop.set()
    elapsed = time.monotonic() - began
    # A flooder the server stopped reading waits in drain() for good: give up on it.
    _, stuck = await asyncio.wait(floods, timeout=2) if floods else (set(), set())
    for task in stuck:
        task.cancel()
    # Did the server close the stalled sockets? Read what it buffered, up to its close frame.
    for sock in stalled:
        if sock.refused is None:
            sock.writer.transport.resume_reading()
    drains = [asyncio.ensure_future(s.discard()) for s in stalled if s.refused is None]
    if drains:
        await asyncio.wait(drains, timeout=5)
    codes: dict[str, int] = {}
    for group, socks in (("crowd", crowd), ("stalled", stalled), ("flooders", flooders)):
        for sock in socks:
            what = (f"refused {sock.refused}" if sock.refused is not None else
                    f"closed {sock.close_code}" if sock.close_code is not None else "open")
            codes[f"{group}: {what}"] = codes.get(f"{group}: {what}", 0) + 1
    emit({"flood_sent": counts["sent"], "flood_per_s": counts["sent"] / max(elapsed, 1e-9),
          "flooders_stuck_at_stop": len(stuck), "sockets": codes,
          "crowd_frames": sum(s.received for s in crowd)})
    for task in readers + drains:
        task.cancel()
    for sock in crowd + stalled + flooders:
        if sock.writer is not None:
            sock.writer.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
