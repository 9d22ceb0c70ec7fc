"""From the workers' raw timestamps to the figures we report (medians and tail percentiles).

An edit counts as delivered when every client but its author has applied it.
"""

from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def dist_ms(seconds: list[float]) -> dict:
    """p50 / p99 / max of a list of durations, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {"p50": percentile(ms, 50), "p99": percentile(ms, 99),
            "max": max(ms) if ms else None, "n": len(ms)}


def merge(reports: list[dict]) -> dict:
    """One view of all workers: JSON turned the integer keys into strings."""
    merged: dict = {"typed": {}, "sent": {}, "ok": {}, "recv_max": {}, "recv_count": {}}
    for report in reports:
        for name in ("typed", "sent", "ok"):
            merged[name].update({int(k): v for k, v in report[name].items()})
        for k, v in report["recv_max"].items():
            k = int(k)
            merged["recv_max"][k] = max(v, merged["recv_max"].get(k, 0.0))
        for k, v in report["recv_count"].items():
            k = int(k)
            merged["recv_count"][k] = merged["recv_count"].get(k, 0) + v
    return merged


def summarize(reports: list[dict], n_receivers: int, start: float) -> dict:
    """Fan-out and confirmation latency, delivery, convergence and generator lateness."""
    m = merge(reports)
    typed, sent, ok, recv = m["typed"], m["sent"], m["ok"], m["recv_max"]
    delivered = [k for k in typed if m["recv_count"].get(k, 0) >= n_receivers and k in recv]
    fanout = [recv[k] - sent[k] for k in delivered if k in sent]
    fanout_typed = [recv[k] - typed[k] for k in delivered]
    confirm = [ok[k] - typed[k] for k in typed if k in ok]
    end = max([recv[k] for k in delivered] + [ok[k] for k in ok] or [start])
    first = min(typed.values(), default=start)
    digests = {d for r in reports for d in r["digests"]["notebook"]}
    lateness = [x for r in reports for x in r["lateness"]]
    wall = max(end - first, 1e-9)
    return {
        "edits": len(typed),
        "delivered_to_all": len(delivered),
        "missing_deliveries": sum(r.get("missing", 0) for r in reports),
        "converged": len(digests) == 1,
        "fanout_ms": dist_ms(fanout),
        "fanout_from_keystroke_ms": dist_ms(fanout_typed),
        "confirm_ms": dist_ms(confirm) if ok else None,
        "stale_answers": sum(r.get("stale", 0) for r in reports),
        "wall_s": wall,
        "offered_edits_per_s": len(typed) / max(max(typed.values(), default=first) - first,
                                                1e-9),
        "accepted_edits_per_s": len(delivered) / wall,
        "schedule_lateness_ms": {"p50": 1000 * (statistics.median(lateness) if lateness else 0),
                                 "p99": 1000 * (percentile(lateness, 99) or 0)},
    }
