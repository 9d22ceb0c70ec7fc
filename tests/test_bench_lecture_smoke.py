"""Smoke test of the lecture-hall benchmark (benchmarks/bench_lecture.py) at a tiny size.

It runs both phases against our server, attackers included, and checks the report's shape
and that its numbers are sane. No timing assertions: the figures are in docs/benchmarks.md.
"""

from __future__ import annotations

import json

from benchmarks.bench_lecture import main, table


def test_lecture_benchmark_reports_latency_cpu_and_memory_quiet_and_under_attack(tmp_path):
    out_file = tmp_path / "lecture.json"
    out = main(["--quick", "--targets", "ours", "--viewers", "8", "--edits", "20",
                "--rate", "10", "--set", "no_such_setting=1", "--out", str(out_file)])
    assert json.loads(out_file.read_text())["phases"] == out["phases"]
    assert out["settings_dropped"] == ["no_such_setting"]
    assert "max_message_bytes" in out["server_defaults"]
    quiet, attack = out["phases"]
    assert (quiet["phase"], attack["phase"]) == ("quiet", "attack")
    for phase in (quiet, attack):
        assert phase["target"] == "ours" and phase["edits"] == 20
        # viewers are not attackers: each of them gets every edit, attack or not
        assert phase["delivered_to_all"] == 20 and phase["missing_deliveries"] == 0
        assert phase["converged"]
        assert phase["sampled_viewers"] == 6
        assert phase["fanout_ms"]["n"] == 20 * 6  # every (edit, sampled viewer) pair
        assert phase["crowd"]["sockets"] == {"crowd: open": 2}  # the other viewers read all
        assert phase["crowd"]["frames"] >= 2 * 20
        assert 0 < phase["fanout_ms"]["p50"] <= phase["fanout_ms"]["p99"]
        assert phase["fanout_to_all_ms"]["p99"] >= phase["fanout_ms"]["p50"]
        assert phase["server_cpu_ms_per_edit"] > 0
        rss = phase["rss_mb"]
        assert 10 < rss["start"] <= rss["peak"] and rss["end"] > 10
        assert phase["runs"] == 2 and phase["runs_failed"] == 0  # the teacher ran cell 1
    assert quiet["attackers"] is None
    attackers = attack["attackers"]
    assert attackers["flood_sent"] > 0
    assert sum(attackers["sockets"].values()) == 3 + 5  # every stalled socket and flooder
    assert "| ours | attack |" in table(out)
