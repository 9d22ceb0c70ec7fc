"""Markdown tables from a results file: figures per server, ratios ours/theirs, goals.

`python -m benchmarks.report benchmarks/results/<file>.json` prints them again.
"""

from __future__ import annotations

import json
import sys

# The goals: fan-out p99 per scenario (ms), CPU ratio, confirmation, join.
P99_GOAL_MS = {"10 clients": 3, "50 clients": 8, "viewers": 30}  # by scenario name
CPU_RATIO_GOAL = 1 / 3
CONFIRM_GOAL_MS = 50
JOIN_GOAL_MS = 50


def _ms(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def _ratio(a, b) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}"


def _key(r: dict, q: str) -> float | None:
    return r["fanout_from_keystroke_ms"][q]


def _goal(name: str) -> float | None:
    return next((g for key, g in P99_GOAL_MS.items() if key in name), None)


def table(out: dict) -> str:
    lines = ["| scenario | server | fan-out p50 ms | fan-out p99 ms | p99 from keystroke ms |"
             " confirm p99 ms | stale |"
             " delivered / offered edits/s | server CPU ms/edit | server CPU | generator CPU |"
             " other CPU | schedule lag p99 ms | converged |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    by_name: dict[str, dict[str, dict]] = {}
    for r in out["scenarios"]:
        name = r["scenario"]["name"]
        by_name.setdefault(name, {})[r["target"]] = r
        confirm = r["confirm_ms"]["p99"] if r["confirm_ms"] else None
        lines.append(
            f"| {name} | {r['target']} | {_ms(r['fanout_ms']['p50'])} |"
            f" {_ms(r['fanout_ms']['p99'])} | {_ms(r['fanout_from_keystroke_ms']['p99'])} |"
            f" {_ms(confirm)} |"
            f" {r['stale_answers'] if r['target'].startswith('ours') else '–'} |"
            f" {r['accepted_edits_per_s']:.0f} / {r['offered_edits_per_s']:.0f} |"
            f" {r['server_cpu_ms_per_edit']:.2f} | {100 * r['server_cpu_util']:.0f}% |"
            f" {100 * r['generator_cpu_util']:.0f}% | {100 * r.get('other_cpu_util', 0):.0f}% |"
            f" {r['schedule_lateness_ms']['p99']:.1f} |"
            f" {_converged(r)} |")
    lines += ["", "| scenario | p50 ours/jc | p99 ours/jc | p99 ours/jc-nodelay |"
              " CPU/edit ours/jc | CPU/edit ours/jc-nodelay | goals (ours) |",
              "|---|---|---|---|---|---|---|"]
    for (name, rows), mine in ((item, m) for item in by_name.items()
                               for m in ("ours", "ours-patched")):
        ours = rows.get(mine)
        if ours is None:
            continue
        if mine != "ours":
            name = f"{name} ({mine})"
        # Ratios from the keystroke: ours may hold an edit while a push is in flight, theirs
        # sends at once, so this is the comparison that does not flatter us.
        jc = rows.get("jc")
        cells = [_ratio(_key(ours, "p50"), _key(jc, "p50")) if jc else "–"]
        for metric in ("p99", "cpu"):
            for theirs in ("jc", "jc-nodelay"):
                other = rows.get(theirs)
                if other is None:
                    cells.append("–")
                elif metric == "p99":
                    cells.append(_ratio(_key(ours, "p99"), _key(other, "p99")))
                else:
                    cells.append(_ratio(ours["server_cpu_ms_per_edit"],
                                        other["server_cpu_ms_per_edit"]))
        lines.append(f"| {name} | {' | '.join(cells)} | {_goals(name, ours, rows.get('jc'))} |")
    if out.get("memory"):
        lines += ["", "| server | RSS, no room MB | first room MB | another room MB |"
                  " per client KB |", "|---|---|---|---|---|"]
        for m in out["memory"]:
            lines.append(f"| {m['target']} | {m['rss_mb_no_room']:.1f} |"
                         f" {m['rss_mb_first_room']:.1f} | {m['rss_mb_second_room']:.1f} |"
                         f" {m['rss_kb_per_client']:.0f} |")
    joins = out.get("joins") or ({"ours": out["join"]} if out.get("join") else {})
    for target, j in joins.items():
        lines += ["", f"Join of a {j['cells']}-cell notebook ({target}, median of"
                  f" {j['samples']}):"
                  f" server time {j['cold_join_server_ms']:.1f} ms with the room load"
                  f" (goal ≤ {JOIN_GOAL_MS} ms), {j['warm_join_server_ms']:.1f} ms into a loaded"
                  f" room, {j['journal_join_server_ms']:.1f} ms restored from its journal after"
                  f" a restart. Server CPU per join: {j['cold_join_server_cpu_ms']:.1f} ms fresh"
                  f" (plus one join into the loaded room), {j['journal_join_server_cpu_ms']:.1f} ms"
                  f" restored; room load {j['room_load_ms']:.1f} ms, of which parsing the"
                  f" file in-process {j['parse_in_process_ms']:.1f} ms."]
    return "\n".join(lines)


def _converged(r: dict) -> str:
    """`yes`; `NO` when peers hold different text; `incomplete` when edits were still missing."""
    if not r["converged"] and not r["missing_deliveries"]:
        return "NO"
    if r["missing_deliveries"]:
        return f"incomplete ({r['edits'] - r['delivered_to_all']} edits not everywhere)"
    return "yes"


def _goals(name: str, ours: dict, jc: dict | None) -> str:
    notes = []
    goal = _goal(name)
    p99 = ours["fanout_ms"]["p99"]
    if goal is not None and p99 is not None:
        notes.append(f"p99 ≤ {goal} ms: {'met' if p99 <= goal else 'MISSED'}")
    if ours["confirm_ms"] and "one cell" in name:
        c99 = ours["confirm_ms"]["p99"]
        notes.append(f"confirm p99 ≤ {CONFIRM_GOAL_MS} ms: "
                     f"{'met' if c99 <= CONFIRM_GOAL_MS else 'MISSED'}")
        notes.append(f"stale answers {ours['stale_answers']}")
    if jc is not None and jc["server_cpu_ms_per_edit"]:
        ratio = ours["server_cpu_ms_per_edit"] / jc["server_cpu_ms_per_edit"]
        notes.append(f"CPU ≤ 1/3 of jc: {'met' if ratio <= CPU_RATIO_GOAL else 'MISSED'}")
    return "; ".join(notes)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(table(json.load(f)))
