// Random differential cases for the Python ChangeSet port, answered by the real libraries.
// Usage: node gen_cases.mjs <seed> <count>  -> one JSON object on stdout.
import { ChangeSet, Text, MapMode } from "@codemirror/state";
import { rebaseUpdates } from "@codemirror/collab";

const seed = Number(process.argv[2] ?? 1) >>> 0;
const count = Number(process.argv[3] ?? 1000);

// mulberry32: small, seedable, good enough for test generation.
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

// Pieces chosen to hit UTF-16 edge cases: astral chars, ZWJ sequences, flags, CJK,
// combining marks, line breaks of every kind, and the odd lone surrogate.
const DOC_PIECES = ["a", "b", "c", "xyz", " ", "\n", "é", "中文", "😀", "👩‍💻", "🇫🇷", "e\u0301", "\ud83d", "\ude00", "Q"];
const INS_PIECES = ["x", "yz", "\n", "\r\n", "\r", "😀", "👩‍💻", "🇫🇷", "中", "", "\ud83d", "\ude00", "ab\ncd", "\n\n", "é"];

function randDoc() {
  const n = int(8);
  let d = "";
  for (let i = 0; i < n; i++) d += pick(DOC_PIECES);
  return d;
}
function randInsert() {
  const n = int(3);
  let d = "";
  for (let i = 0; i < n; i++) d += pick(INS_PIECES);
  return d;
}
// Inserted text splits lines like CodeMirror; documents here never hold "\r".
const textOf = (str) => Text.of(str.split(/\r\n?|\n/));

function randSpecs(len) {
  const n = int(5);
  const specs = [];
  let pos = 0;
  const ordered = rnd() < 0.6;
  for (let i = 0; i < n; i++) {
    let from, to;
    if (ordered) {
      if (pos > len) break;
      from = pos + int(len - pos + 1);
      to = rnd() < 0.4 ? from : from + int(len - from + 1);
      pos = to;
    } else {
      from = int(len + 1);
      to = rnd() < 0.4 ? from : from + int(len - from + 1);
    }
    const spec = { from };
    if (to !== from || rnd() < 0.3) spec.to = to;
    const ins = randInsert();
    if (ins || rnd() < 0.5) spec.insert = ins;
    specs.push(spec);
  }
  if (rnd() < 0.1 && specs.length > 1) return [specs.slice(0, 1), specs.slice(1)];
  return specs;
}

function randSet(len) {
  return ChangeSet.of(randSpecs(len), len);
}

function mapPositions(cs) {
  const out = [];
  for (let pos = 0; pos <= cs.length; pos++)
    for (const assoc of [-1, 1])
      for (const mode of [MapMode.Simple, MapMode.TrackDel, MapMode.TrackBefore, MapMode.TrackAfter])
        out.push(cs.mapPos(pos, assoc, mode));
  return out;
}

function pairCase() {
  const doc = randDoc();
  const len = doc.length;
  const specsA = randSpecs(len), specsB = randSpecs(len);
  const a = ChangeSet.of(specsA, len), b = ChangeSet.of(specsB, len);
  const text = textOf(doc);
  const docA = a.apply(text).toString();
  const aOverB = a.map(b), aOverBBefore = a.map(b, true), bOverA = b.map(a);
  const c = randSet(a.newLength);
  return {
    kind: "pair", doc, specsA, specsB,
    a: a.toJSON(), b: b.toJSON(), c: c.toJSON(),
    aLength: a.length, aNewLength: a.newLength, aEmpty: a.empty,
    docA,
    aMapB: aOverB.toJSON(), aMapBBefore: aOverBBefore.toJSON(), bMapA: bOverA.toJSON(),
    aComposeBMapA: a.compose(bOverA).toJSON(),
    aComposeC: a.compose(c).toJSON(),
    docAC: c.apply(a.apply(text)).toString(),
    mergedDoc: bOverA.apply(a.apply(text)).toString(),
    invertA: a.invert(text).toJSON(),
    mapPos: mapPositions(a),
  };
}

function randClient() { return pick(["p0", "p1", "p2"]); }

function rebaseCase() {
  // An authority history `over` that has taken some of client X's updates (rebased,
  // as an authority would), interleaved with other clients' updates.
  let doc = textOf(randDoc());
  const base = doc;
  const mine = [];
  let local = doc;
  const nMine = 1 + int(3);
  for (let i = 0; i < nMine; i++) {
    const cs = randSet(local.length);
    mine.push({ changes: cs, clientID: "X" });
    local = cs.apply(local);
  }
  const over = [];
  let taken = 0;
  const steps = int(5);
  for (let i = 0; i < steps; i++) {
    if (taken < mine.length && rnd() < 0.35) {
      const [u] = rebaseUpdates(mine.slice(0, taken + 1), over).slice(-1);
      over.push({ changes: u.changes, clientID: "X" });
      doc = u.changes.apply(doc);
      taken++;
    } else {
      const cs = randSet(doc.length);
      over.push({ changes: cs, clientID: randClient() });
      doc = cs.apply(doc);
    }
  }
  const prefix = 1 + int(mine.length);
  const pushed = mine.slice(0, prefix);
  const result = rebaseUpdates(pushed, over);
  let after = doc;
  for (const u of result) after = u.changes.apply(after);
  const js = (us) => us.map((u) => ({ clientID: u.clientID, changes: u.changes.toJSON() }));
  return { kind: "rebase", base: base.toString(), updates: js(pushed), over: js(over), result: js(result), doc: after.toString() };
}

function ofCase() {
  const len = int(12);
  const specs = randSpecs(len);
  // ChangeSet.of also takes whole change sets among the specs; they travel as
  // {changeset: <JSON>} here. Sometimes of the wrong length, which must be refused.
  let jsSpecs = specs;
  const wire = specs;
  if (rnd() < 0.3) {
    const setLen = rnd() < 0.85 ? len : len + 1;
    const cs = randSet(setLen);
    const at = int(specs.length + 1);
    jsSpecs = [...specs.slice(0, at), cs, ...specs.slice(at)];
    return ofResult(jsSpecs, [...specs.slice(0, at), { changeset: cs.toJSON() }, ...specs.slice(at)], len);
  }
  return ofResult(jsSpecs, wire, len);
}
function ofResult(jsSpecs, specs, len) {
  let json = null, error = null;
  try { json = ChangeSet.of(jsSpecs, len).toJSON(); } catch (e) { error = String(e.message); }
  return { kind: "of", specs, length: len, json, error };
}

const cases = [];
for (let i = 0; i < count; i++) {
  const r = rnd();
  cases.push(r < 0.55 ? pairCase() : r < 0.8 ? rebaseCase() : ofCase());
}
process.stdout.write(JSON.stringify({ seed, cases }));
