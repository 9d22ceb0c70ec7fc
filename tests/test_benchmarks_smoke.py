"""Smoke test of the load generator against a real server: it runs and its numbers are sane.

No timing assertions: the machine is shared; see docs/benchmarks.md for the figures.
"""

from __future__ import annotations

from benchmarks.driver import Scenario, run
from benchmarks.report import table


def test_loadgen_delivers_every_edit_and_peers_converge(tmp_path):
    result = run("ours", Scenario("smoke", editors=3, viewers=2, rate=20, total_edits=45,
                                  layout="one"), tmp_path, settle=20)
    assert result["edits"] == 45
    assert result["delivered_to_all"] == 45 and result["missing_deliveries"] == 0
    assert result["converged"]
    assert result["stale_answers"] == 0  # per-push rebase never answers stale
    assert result["confirm_ms"]["n"] == 45 and result["fanout_ms"]["p99"] > 0
    assert result["server_cpu_s"] >= 0 and result["server_rss_mb_after"] > 10
    assert "smoke" in table({"scenarios": [result]})
