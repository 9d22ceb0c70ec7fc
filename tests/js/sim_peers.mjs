// Simulation: real CodeMirror collab() peers talking to an authority that lives in Python.
// Usage: node sim_peers.mjs <seed> <runs> <maxHistory>
// Python answers every request line on stdin (see tests/test_ot_simulation.py). The network
// here is virtual: random latency, duplicated and reordered pushes, partial pushes,
// disconnects with pull-based resync, and re-joins with a fresh clientID.
import { readSync } from "node:fs";
import { EditorState, ChangeSet, StateEffect } from "@codemirror/state";
import { collab, receiveUpdates, sendableUpdates, getSyncedVersion, getClientID } from "@codemirror/collab";

const seed = Number(process.argv[2] ?? 1) >>> 0;
const runs = Number(process.argv[3] ?? 10);
const maxHistory = Number(process.argv[4] ?? 1000);

let s = seed || 1;
function rnd() {
  s = (s + 0x6d2b79f5) >>> 0;
  let t = s;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(rnd() * n);
const pick = (a) => a[int(a.length)];

// Synchronous line protocol with the Python authority.
let inBuf = Buffer.alloc(0);
function readLine() {
  for (;;) {
    const nl = inBuf.indexOf(10);
    if (nl >= 0) {
      const line = inBuf.subarray(0, nl).toString("utf8");
      inBuf = inBuf.subarray(nl + 1);
      return line;
    }
    const chunk = Buffer.alloc(1 << 16);
    let n;
    try { n = readSync(0, chunk, 0, chunk.length, null); }
    catch (e) { if (e.code === "EAGAIN") continue; throw e; }
    if (n === 0) throw new Error("python closed the pipe");
    inBuf = Buffer.concat([inBuf, chunk.subarray(0, n)]);
  }
}
function ask(msg) {
  process.stdout.write(JSON.stringify(msg) + "\n");
  return JSON.parse(readLine());
}

// Effect-only updates (no changes) exist in collab() when effects are shared.
const marker = StateEffect.define();
const sharedEffects = (tr) => tr.effects.filter((e) => e.is(marker));

const INS = ["a", "b", "xy", " ", "\n", "😀", "👩‍💻", "中", "é", "\r\n", ""];
let idCounter = 0;
const freshID = () => `s${seed}-${idCounter++}`; // unique per editor, never reused

function randSpecs(len) {
  const specs = [];
  const n = 1 + int(3);
  for (let i = 0; i < n; i++) {
    const from = int(len + 1);
    const to = rnd() < 0.5 ? from : Math.min(len, from + int(4));
    let ins = "";
    for (let k = int(3); k > 0; k--) ins += pick(INS);
    specs.push({ from, to, insert: ins });
  }
  return specs;
}

const toWire = (us) => us.map((u) => ({ clientID: u.clientID, changes: u.changes.toJSON() }));
const fromWire = (us) => us.map((u) => ({ clientID: u.clientID, changes: ChangeSet.fromJSON(u.changes) }));

function oneRun(run) {
  const stats = { pushes: 0, stale: 0, gone: 0, effectOnly: 0, dupSent: 0, partial: 0, disconnects: 0, rejoins: 0, errors: [] };
  const initial = pick(["", "abc", "hello 😀 world\nline two", "x = 1\ny = 2\n"]);
  ask({ t: "reset", doc: initial, maxHistory });
  const nPeers = 2 + int(3);
  const peers = [];
  function newPeer(i, doc, version) {
    const id = freshID();
    const state = EditorState.create({ doc, extensions: [collab({ startVersion: version, clientID: id, sharedEffects })] });
    ask({ t: "shadow", peer: i, doc, version, clientID: id });
    return { i, state, inFlight: null, connected: true, pendingPull: false };
  }
  for (let i = 0; i < nPeers; i++) peers.push(newPeer(i, initial, 0));

  let now = 0;
  const events = []; // {time, seq, fn}
  let seq = 0;
  const lastToPeer = new Array(nPeers).fill(0);
  const epoch = new Array(nPeers).fill(0); // messages to a peer from an older connection are dropped
  function at(time, fn) { events.push({ time, seq: seq++, fn }); }
  function toPeer(i, fn) {
    // One WebSocket per peer: server-to-peer messages arrive in order.
    const e = epoch[i];
    const time = Math.max(lastToPeer[i], now + 1 + int(30));
    lastToPeer[i] = time;
    at(time, () => { if (epoch[i] === e) fn(); });
  }
  const expect = (p) => ({
    doc: p.state.doc.toString(),
    version: getSyncedVersion(p.state),
    sendable: toWire(sendableUpdates(p.state)),
  });
  function check(p, reply) {
    if (!reply.ok) stats.errors.push(`peer ${p.i} shadow: ${reply.why}`);
  }
  function receive(p, version, updates) {
    if (version < getSyncedVersion(p.state)) return; // already had it (pull then broadcast)
    if (version !== getSyncedVersion(p.state)) {
      stats.errors.push(`peer ${p.i}: gap, got ${version} at ${getSyncedVersion(p.state)}`);
      return;
    }
    p.state = receiveUpdates(p.state, fromWire(updates)).state;
    check(p, ask({ t: "receive", peer: p.i, updates, expect: expect(p) }));
  }
  function serverPush(from, msg) {
    const reply = ask({ t: "push", version: msg.version, updates: msg.updates });
    stats.pushes++;
    if (reply.ok) {
      if (reply.accepted.length)
        for (const q of peers)
          if (q.connected) toPeer(q.i, () => receive(q, reply.version_before, reply.accepted));
    } else if (reply.code === "stale") {
      stats.stale++;
    } else {
      stats.errors.push(`push refused: ${reply.code} ${reply.message}`);
    }
    const p = peers[from];
    if (p.connected) toPeer(from, () => { if (p.inFlight === msg.id) { p.inFlight = null; if (!reply.ok) pull(p); } });
  }
  function pull(p) {
    if (p.pendingPull) return;
    p.pendingPull = true;
    const e = epoch[p.i];
    at(now + 1 + int(30), () => {
      if (epoch[p.i] !== e) return;
      // A reconnecting peer gets broadcasts from the moment the server answers its pull.
      p.connected = true;
      const reply = ask({ t: "pull", version: getSyncedVersion(p.state) });
      toPeer(p.i, () => {
        p.pendingPull = false;
        if (!reply.ok && reply.code === "stale" && reply.gone) {
          // History gone: re-join from the authority's current text (a fresh editor).
          stats.gone++;
          epoch[p.i]++; // a new connection: nothing in the air reaches the old editor
          const joined = ask({ t: "join" });
          peers[p.i] = newPeer(p.i, joined.doc, joined.version);
          return;
        }
        if (!reply.ok) { stats.errors.push(`pull refused: ${reply.code}`); return; }
        for (const push of reply.pushes) receive(p, push.version, push.updates);
      });
    });
  }
  let msgId = 0;
  function maybePush(p) {
    const sendable = sendableUpdates(p.state);
    if (!p.connected || p.inFlight !== null || p.pendingPull || !sendable.length) return;
    let count = sendable.length;
    if (count > 1 && rnd() < 0.2) { count = 1 + int(count - 1); stats.partial++; }
    const msg = { id: msgId++, version: getSyncedVersion(p.state), updates: toWire(sendable.slice(0, count)) };
    p.inFlight = msg.id;
    at(now + 1 + int(40), () => serverPush(p.i, msg));
    if (rnd() < 0.1) { stats.dupSent++; at(now + 1 + int(120), () => serverPush(p.i, msg)); }
  }

  const steps = 40 + int(40);
  let quiet = 0;
  for (now = 0; ; now++) {
    events.sort((a, b) => a.time - b.time || a.seq - b.seq);
    while (events.length && events[0].time <= now) events.shift().fn();
    if (now < steps) {
      for (const p of peers) {
        const r = rnd();
        if (r < 0.3) { // offline edits too
          const changes = ChangeSet.of(randSpecs(p.state.doc.length), p.state.doc.length);
          p.state = p.state.update({ changes }).state;
          check(p, ask({ t: "local", peer: p.i, changes: changes.toJSON(), expect: expect(p) }));
        } else if (r < 0.31) {
          stats.effectOnly++;
          p.state = p.state.update({ effects: marker.of(null) }).state;
          const empty = ChangeSet.empty(p.state.doc.length).toJSON();
          check(p, ask({ t: "local", peer: p.i, changes: empty, keepEmpty: true, expect: expect(p) }));
        } else if (p.connected && r < 0.34) {
          // Disconnect: everything in the air to this peer is lost.
          stats.disconnects++;
          p.connected = false; p.inFlight = null; p.pendingPull = false; epoch[p.i]++;
          const i = p.i;
          at(now + 5 + int(40), () => {
            const q = peers[i];
            if (rnd() < 0.3) {
              // Re-join as a fresh editor with a new clientID (a reload; unconfirmed text,
              // if any, was offered to the user and dropped here).
              stats.rejoins++;
              const joined = ask({ t: "join" });
              peers[i] = newPeer(i, joined.doc, joined.version);
              return;
            }
            pull(q);
          });
        }
      }
    }
    for (const p of peers) maybePush(p);
    const busy = events.length || peers.some((p) => !p.connected || p.inFlight !== null || p.pendingPull || sendableUpdates(p.state).length);
    if (now >= steps && !busy) { if (++quiet > 2) break; } else quiet = 0;
    if (now > steps + 20000) { stats.errors.push("did not settle"); break; }
  }
  const final = ask({ t: "final", peers: peers.map((p) => expect(p)), stats });
  return final;
}

let summary = { runs: 0 };
for (let r = 0; r < runs; r++) { ask({ t: "run", run: r }); oneRun(r); summary.runs++; }
ask({ t: "done", summary });
