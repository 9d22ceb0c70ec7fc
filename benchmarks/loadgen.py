"""The benchmark command: every scenario against our server and jupyter-collaboration, same run.

`python -m benchmarks.loadgen [--quick]` (run.sh wraps it); writes benchmarks/results/<time>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from . import driver, join, servers
from .driver import Scenario
from .procstat import machine
from .report import table

TARGETS = ["ours", "jc", "jc-nodelay"]
RESULTS = Path(__file__).resolve().parent / "results"


def scenarios(quick: bool) -> list[Scenario]:
    """The issue's scenarios, each bounded in edits; `quick` is a smoke run of the same shapes."""
    if quick:
        return [Scenario("10 clients x 50/s each", 10, 0, 50, 200),
                Scenario("10 clients, 50/s in all", 10, 0, 5, 50),
                Scenario("50 clients x 50/s each", 50, 0, 50, 500),
                Scenario("50 clients, 50/s in all", 50, 0, 1, 50),
                Scenario("1 editor + 20 viewers, 20/s", 1, 20, 20, 40),
                Scenario("10 typists x 20/s, one cell", 10, 0, 20, 200, layout="one")]
    # "N x M/s" is read both ways: M edits/s per client (the wording) and M in all
    # (how DESIGN.md's jupyter-collaboration figures were taken).
    return [Scenario("10 clients x 50/s each", 10, 0, 50, 2000),
            Scenario("10 clients, 50/s in all", 10, 0, 5, 1000),
            Scenario("50 clients x 50/s each", 50, 0, 50, 2000),
            Scenario("50 clients, 50/s in all", 50, 0, 1, 1000),
            Scenario("1 editor + 200 viewers, 20/s", 1, 200, 20, 400),
            Scenario("10 typists x 20/s, one cell", 10, 0, 20, 2000, layout="one")]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small smoke run (about a minute)")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help="comma-separated: ours, jc, jc-nodelay")
    parser.add_argument("--only", default="", help="run only scenarios whose name contains this")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (server logs)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the servers (collapsed stacks in results/); skews CPU")
    parser.add_argument("--patch", action="append", type=Path, default=[],
                        help="also run target ours-patched: HEAD with this patch (repeatable)")
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    workdir = Path(tempfile.mkdtemp(prefix="marimo-collab-bench-"))
    if args.patch:
        driver.PATCHED_SRC = servers.patched_tree(args.patch, workdir / "patched")
        targets.insert(targets.index("ours") + 1 if "ours" in targets else 0, "ours-patched")
    began = time.time()
    out = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began)),
           "quick": args.quick, "machine": machine(), "targets": targets,
           "patches": [str(p) for p in args.patch],
           "scenarios": [], "memory": [], "join": None}
    try:
        # Targets take turns per scenario, so a colleague's load hits them alike.
        for n, scenario in enumerate(scenarios(args.quick)):
            if args.only and args.only not in scenario.name:
                continue
            for target in targets:
                print(f"· {scenario.name}: {target}", flush=True)
                profile = (RESULTS / f"profile-s{n}-{target}.txt") if args.profile else None
                RESULTS.mkdir(exist_ok=True)
                out["scenarios"].append(driver.run(target, scenario, workdir / f"s{n}-{target}",
                                                   profile=profile))
        for target in targets:
            print(f"· memory: {target}", flush=True)
            out["memory"].append(driver.memory(target, workdir / f"mem-{target}",
                                               extra_clients=5 if args.quick else 20))
        for target in [t for t in targets if t.startswith("ours")]:
            print(f"· join of a 200-cell notebook: {target}", flush=True)
            result = join.run(workdir / f"join-{target}", samples=3 if args.quick else 10,
                              src=driver.PATCHED_SRC if target == "ours-patched" else None)
            out.setdefault("joins", {})[target] = result
            if target == "ours":
                out["join"] = result
    finally:
        if driver.PATCHED_SRC is not None:
            servers.remove_tree(driver.PATCHED_SRC)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    out["runtime_s"] = time.time() - began
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / (time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(began))
                      + ("-quick" if args.quick else "") + ".json")
    path.write_text(json.dumps(out, indent=1))
    print(table(out))
    print(f"\nresults: {path}  ({out['runtime_s']:.0f} s)")
    return out


if __name__ == "__main__":
    main()
