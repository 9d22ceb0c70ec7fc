// A swarm of real @codemirror/collab peers (no DOM) typing into a REAL marimo-collab server.
// Usage: node peers/swarm.mjs '<config JSON>'   (see DEFAULTS; prints one JSON report on stdout)
//
// Each peer is one WebSocket (package `ws`, `Authorization: token ...`) and, per cell, one
// EditorState with collab({startVersion, clientID}) and a clientID fresh per editor session.
// It follows docs/protocol.md to the letter: receiveUpdates once per `change` broadcast or pull
// entry, pushes sendableUpdates() (or a prefix) with getSyncedVersion() read at the same
// moment, one push in flight per cell, `stale` answered by pulling (and counted).
// The network is hostile: random latency on every message in both directions (order kept per
// socket), duplicated pushes, partial pushes, and disconnects followed by a catch-up join.
// Every insertion carries a unique token ⟦run-peer-n⟧; a token whose push got `ok` is "acked".
// With protectTokens, deletions never touch a token the peer can see, so every acked token
// must survive to the end (concurrent insertions survive deletions in CodeMirror's OT).
import { EditorState, ChangeSet } from "@codemirror/state";
import { collab, receiveUpdates, sendableUpdates, getSyncedVersion } from "@codemirror/collab";
import { createInterface } from "node:readline";
import WebSocket from "ws";

const DEFAULTS = {
  url: null, // ws://127.0.0.1:PORT/api/marimo-collab/ws?path=...
  token: null,
  peers: 3,
  edits: 200, // per peer
  cells: null, // cell ids to type into (null: every cell)
  seed: 1,
  run: "r", // token prefix, unique per swarm run
  latency: [0, 30], // ms, each message, each direction
  editInterval: [2, 12], // ms between a peer's keystrokes
  pDelete: 0.25,
  pDup: 0.08, // send the same push twice
  pPartial: 0.2, // push only a prefix of sendableUpdates()
  pDisconnect: 0.01, // per keystroke
  offline: [20, 300], // ms a disconnected peer stays away
  protectTokens: false,
  reconnectBackoff: [50, 300],
  deadlineMs: 120000,
  control: false, // read commands on stdin: "stop" (stop typing, settle), "acked" (print them)
};
const cfg = { ...DEFAULTS, ...JSON.parse(process.argv[2] ?? "{}") };

let seed = cfg.seed >>> 0 || 1;
function rnd() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(rnd() * n);
const between = ([lo, hi]) => lo + rnd() * (hi - lo);
const pick = (a) => a[int(a.length)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const FILLER = ["a", "Z", " ", "中", "文", "😀", "👩‍💻", "é", "\r\n", "\n", "\t", "x", "\r\n\r\n"];
const TOKEN = /⟦[^⟧]*⟧/g;

const stats = { keystrokes: 0, pushes: 0, dupPushes: 0, partialPushes: 0, pulls: 0,
  disconnects: 0, reconnects: 0, failedConnects: 0, receives: 0, catchUps: 0, wholeDocs: 0 };
let staleAnswers = 0;
const staleDetails = [];
const errors = [];
const acked = new Set();
const typed = new Set();
const lostUnconfirmed = []; // unconfirmed text a session change forced us to drop (reported)
let clientCounter = 0;
let settling = false;
let stopTyping = false;

/** Messages delivered after a random delay, never overtaking each other. */
class DelayQueue {
  constructor(deliver) {
    this.deliver = deliver;
    this.items = [];
    this.timer = null;
    this.lastDue = 0;
  }
  push(item) {
    const due = Math.max(this.lastDue, Date.now() + between(cfg.latency));
    this.lastDue = due;
    this.items.push({ due, item });
    this.arm();
  }
  arm() {
    if (this.timer || !this.items.length) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const now = Date.now();
      while (this.items.length && this.items[0].due <= now) this.deliver(this.items.shift().item);
      this.arm();
    }, Math.max(0, this.items[0].due - Date.now()));
  }
  clear() {
    this.items = [];
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
  get empty() {
    return this.items.length === 0;
  }
}

class Peer {
  constructor(index) {
    this.index = index;
    this.peerId = `swarm-${cfg.run}-${index}-${Math.floor(rnd() * 1e9)}`;
    this.cells = new Map(); // cell id -> {state, inflight, pulling}
    this.session = null;
    this.ws = null;
    this.generation = 0;
    this.joined = false;
    this.connecting = false;
    this.pending = new Map(); // request id -> handler(response)
    this.nextId = 1;
    this.tokenCount = 0;
    this.originTokens = new WeakMap(); // Transaction -> tokens it inserted
    this.sendQ = new DelayQueue((text) => this.rawSend(text));
    this.recvQ = new DelayQueue((message) => this.handle(message));
    this.editsDone = 0;
    this.closeCodes = [];
  }

  freshCell(code, version) {
    const clientID = `cm-${cfg.run}-${this.index}-${clientCounter++}`; // never reused
    return { state: EditorState.create({ doc: code, extensions: [collab({ startVersion: version, clientID })] }),
      inflight: null, pulling: false };
  }

  // ---- transport -----------------------------------------------------------------------

  connect() {
    if (this.connecting || this.ws) return;
    this.connecting = true;
    const generation = ++this.generation;
    const ws = new WebSocket(cfg.url, { headers: { Authorization: `token ${cfg.token}` } });
    ws.on("open", () => {
      if (generation !== this.generation) return ws.terminate();
      this.connecting = false;
      this.ws = ws;
      this.join();
    });
    ws.on("message", (data) => {
      if (generation !== this.generation) return;
      this.recvQ.push(JSON.parse(data.toString()));
    });
    ws.on("close", (code) => {
      if (generation !== this.generation) return;
      this.closeCodes.push(code);
      this.dropConnection();
      this.scheduleReconnect();
    });
    ws.on("error", () => {
      if (generation !== this.generation) return;
      if (!this.ws) stats.failedConnects++;
      this.dropConnection();
      this.scheduleReconnect();
    });
  }

  dropConnection() {
    this.generation++;
    const ws = this.ws;
    this.ws = null;
    this.connecting = false;
    this.joined = false;
    this.pending.clear();
    this.sendQ.clear();
    this.recvQ.clear();
    for (const cell of this.cells.values()) {
      cell.inflight = null;
      cell.pulling = false;
    }
    if (ws) ws.terminate();
  }

  scheduleReconnect() {
    if (this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, between(cfg.reconnectBackoff));
  }

  disconnect() {
    stats.disconnects++;
    this.dropConnection();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      stats.reconnects++;
      this.connect();
    }, between(cfg.offline));
  }

  rawSend(text) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  request(message, handler) {
    const id = this.nextId++;
    this.pending.set(id, handler);
    this.sendQ.push(JSON.stringify({ ...message, id }));
    return id;
  }

  // ---- protocol ------------------------------------------------------------------------

  join() {
    const message = { type: "join", peer_id: this.peerId };
    if (this.session) {
      message.session = this.session;
      message.versions = Object.fromEntries(
        [...this.cells].map(([id, cell]) => [id, getSyncedVersion(cell.state)]));
    }
    this.request(message, (response) => {
      if (response.status !== "ok") return this.error("join", response);
      const resumed = this.session !== null && response.session === this.session;
      if (this.session !== null && !resumed) {
        for (const [id, cell] of this.cells) {
          if (sendableUpdates(cell.state).length) lostUnconfirmed.push({ peer: this.index, cell: id,
            text: cell.state.doc.toString() });
        }
      }
      const previous = resumed ? this.cells : new Map();
      this.session = response.session;
      this.cells = new Map();
      for (const info of response.notebook.cells) {
        const known = previous.get(info.id);
        if (known && "changes" in info) {
          stats.catchUps++;
          this.cells.set(info.id, known);
          for (const entry of info.changes) this.receive(info.id, entry.version, entry.updates);
        } else {
          if (known) {
            stats.wholeDocs++;
            if (sendableUpdates(known.state).length) lostUnconfirmed.push({ peer: this.index,
              cell: info.id, text: known.state.doc.toString() });
          }
          this.cells.set(info.id, this.freshCell(info.code, info.version));
        }
      }
      this.joined = true;
      for (const id of this.cells.keys()) this.push(id);
    });
  }

  handle(message) {
    if (message.type === "response") {
      const handler = this.pending.get(message.in_reply);
      if (handler) {
        this.pending.delete(message.in_reply);
        handler(message);
      } else {
        this.error("unexpected response", message);
      }
    } else if (message.type === "change") {
      if (this.joined) this.receive(message.document_id, message.version, message.updates);
    } else if (message.type === "cells") {
      if (!this.joined) return;
      for (const op of message.ops) {
        if (op.op === "create") this.cells.set(op.cell_id, this.freshCell(op.code, 0));
        else if (op.op === "delete") this.cells.delete(op.cell_id);
      }
    }
  }

  /** One receiveUpdates per accepted push; a gap (missed broadcast) is filled by a pull. */
  receive(cellId, version, updates) {
    const cell = this.cells.get(cellId);
    if (!cell) return;
    const synced = getSyncedVersion(cell.state);
    if (version < synced) return; // already have it (catch-up entry, or pulled)
    if (version > synced) return this.pull(cellId);
    stats.receives++;
    cell.state = receiveUpdates(cell.state, updates.map((u) => ({
      changes: ChangeSet.fromJSON(u.changes), clientID: u.clientID }))).state;
    this.push(cellId);
  }

  pull(cellId) {
    const cell = this.cells.get(cellId);
    if (!cell || cell.pulling || !this.joined) return;
    cell.pulling = true;
    stats.pulls++;
    this.request({ type: "pull", document_id: cellId, version: getSyncedVersion(cell.state) },
      (response) => {
        cell.pulling = false;
        if (response.status !== "ok") {
          if (response.error?.code === "stale") return this.stale("pull", cellId, response);
          return this.error("pull", response);
        }
        for (const entry of response.changes) this.receive(cellId, entry.version, entry.updates);
        this.push(cellId);
      });
  }

  /** Push sendableUpdates() (sometimes a prefix, sometimes twice) with the synced version. */
  push(cellId) {
    const cell = this.cells.get(cellId);
    if (!cell || !this.joined || cell.inflight) return;
    const sendable = sendableUpdates(cell.state);
    if (!sendable.length) return;
    let count = sendable.length;
    if (count > 1 && rnd() < cfg.pPartial) {
      count = 1 + int(count - 1);
      stats.partialPushes++;
    }
    const updates = sendable.slice(0, count);
    const message = { type: "change", document_id: cellId, version: getSyncedVersion(cell.state),
      updates: updates.map((u) => ({ clientID: u.clientID, changes: u.changes.toJSON() })) };
    const origins = updates.map((u) => u.origin);
    const onAnswer = (response, duplicate) => {
      if (response.status === "ok") {
        for (const origin of origins) for (const t of this.originTokens.get(origin) ?? []) acked.add(t);
      } else if (response.error?.code === "stale") {
        this.stale(duplicate ? "duplicate push" : "push", cellId, response);
      } else {
        this.error(duplicate ? "duplicate push" : "push", response, message);
      }
      if (!duplicate && cell.inflight === id) {
        cell.inflight = null;
        if (response.error?.code === "stale") this.pull(cellId);
        else this.push(cellId);
      }
    };
    stats.pushes++;
    const id = this.request(message, (r) => onAnswer(r, false));
    cell.inflight = id;
    if (rnd() < cfg.pDup) {
      stats.dupPushes++;
      this.request(message, (r) => onAnswer(r, true));
    }
  }

  stale(what, cellId, response) {
    staleAnswers++;
    staleDetails.push({ what, peer: this.index, cell: cellId, error: response.error,
      gone: response.gone ?? false });
    if (response.gone) {
      this.dropConnection();
      this.connect();
    }
  }

  error(what, response, message) {
    errors.push({ what, peer: this.index, response, message });
  }

  // ---- typing --------------------------------------------------------------------------

  keystroke() {
    const targets = [...this.cells.keys()].filter((id) => !cfg.cells || cfg.cells.includes(id));
    if (!targets.length) return;
    const cellId = pick(targets);
    const cell = this.cells.get(cellId);
    const doc = cell.state.doc.toString();
    const spans = cfg.protectTokens ? [...doc.matchAll(TOKEN)].map((m) => [m.index, m.index + m[0].length]) : [];
    const inside = (pos) => spans.find(([a, b]) => a < pos && pos < b);
    let spec;
    let tokens = [];
    if (doc.length > 0 && rnd() < cfg.pDelete) {
      let from = int(doc.length);
      const span = inside(from) ?? spans.find(([a, b]) => a === from && b > from);
      if (span) from = span[1];
      let to = Math.min(doc.length, from + 1 + int(4));
      const next = spans.find(([a]) => a >= from && a < to);
      if (next) to = next[0];
      if (to <= from) return;
      spec = { from, to };
    } else {
      let pos = int(doc.length + 1);
      const span = inside(pos);
      if (span) pos = span[0];
      const token = `⟦${cfg.run}-${this.index}-${this.tokenCount++}⟧`;
      tokens = [token];
      let text = token;
      for (let i = int(3); i > 0; i--) text = rnd() < 0.5 ? pick(FILLER) + text : text + pick(FILLER);
      spec = { from: pos, insert: text };
    }
    const tr = cell.state.update({ changes: spec });
    if (tokens.length) {
      this.originTokens.set(tr, tokens);
      for (const t of tokens) typed.add(t);
    }
    cell.state = tr.state;
    stats.keystrokes++;
    this.push(cellId);
  }

  async type() {
    while (!this.joined) await sleep(5);
    while (this.editsDone < cfg.edits && !stopTyping) {
      await sleep(between(cfg.editInterval));
      if (!this.cells.size) continue;
      this.keystroke();
      this.editsDone++;
      if (rnd() < cfg.pDisconnect) this.disconnect();
    }
  }

  get quiet() {
    if (!this.joined || !this.sendQ.empty || !this.recvQ.empty || this.pending.size) return false;
    for (const cell of this.cells.values()) {
      if (cell.inflight || cell.pulling || sendableUpdates(cell.state).length) return false;
    }
    return true;
  }
}

function listen() {
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (line === "stop") stopTyping = true;
    else if (line === "acked") process.stdout.write(JSON.stringify({ acked: [...acked] }) + "\n");
  });
}

async function main() {
  if (cfg.control) listen();
  const deadline = Date.now() + cfg.deadlineMs;
  const peers = Array.from({ length: cfg.peers }, (_, i) => new Peer(i));
  for (const peer of peers) peer.connect();
  const typing = Promise.all(peers.map((p) => p.type()));
  let typingDone = false;
  typing.then(() => { typingDone = true; });
  const refused = () => errors.some((e) => e.what === "join");
  while (!typingDone) {
    if (refused()) return finish(peers, "a join was refused");
    if (Date.now() > deadline) return finish(peers, "deadline while typing");
    await sleep(50);
  }
  settling = true;
  // Settle: everyone connected, nothing unconfirmed, nothing in flight; then one last pull each.
  for (let round = 0; round < 2; round++) {
    while (!peers.every((p) => p.quiet)) {
      if (refused()) return finish(peers, "a join was refused");
      if (Date.now() > deadline) return finish(peers, "deadline while settling");
      for (const p of peers) {
        if (!p.ws && !p.connecting && !p.reconnectTimer) p.connect();
        if (p.joined) for (const id of p.cells.keys()) p.push(id);
      }
      await sleep(50);
    }
    if (round === 0) for (const p of peers) for (const id of p.cells.keys()) p.pull(id);
  }
  return finish(peers, null);
}

function finish(peers, failure) {
  const report = {
    failure,
    stale: staleAnswers,
    staleDetails: staleDetails.slice(0, 20),
    errors: errors.slice(0, 20),
    errorCount: errors.length,
    lostUnconfirmed,
    stats,
    settling,
    acked: [...acked],
    typed: [...typed],
    peers: peers.map((p) => ({
      index: p.index,
      session: p.session,
      quiet: p.quiet,
      closeCodes: p.closeCodes,
      docs: Object.fromEntries([...p.cells].map(([id, c]) => [id, c.state.doc.toString()])),
      versions: Object.fromEntries([...p.cells].map(([id, c]) => [id, getSyncedVersion(c.state)])),
    })),
  };
  process.stdout.write(JSON.stringify(report) + "\n", () => process.exit(0));
}

main().catch((e) => {
  process.stderr.write(`${e.stack ?? e}\n`);
  process.exit(2);
});
