#!/usr/bin/env python3
"""tools/scaling.py end to end: a weak series at 1 and 2 ranks (2 ranks train on two copies of
the data) with --json and --plot, then --collect of the two points as separate tables, which must
give the same table. Exit 0 when every check holds, 1 otherwise."""
import json
import os
import subprocess
import sys

tool, program, mpiexec, data, work = sys.argv[1:6]
os.makedirs(work, exist_ok=True)
failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name, flush=True)
    if not cond:
        print(detail[-3000:])
        failures.append(name)


top = os.path.dirname(os.path.dirname(os.path.abspath(tool)))
table, png = os.path.join(work, "weak.json"), os.path.join(work, "weak.png")
cmd = [sys.executable, tool, os.path.join(top, "inputs", "three-well.toml"), "--program", program,
       "--mpiexec", mpiexec, "--mode", "weak", "--ranks", "1,2", "--repeats", "1", "--epochs", "3", "--skip", "1",
       "--json", table, "--plot", png, "--", "--set", 'data.input=["%s:/observed"]' % data,
       "--set", "train.batch_size=64"]
r = subprocess.run(cmd, capture_output=True, text=True)
check("weak series runs", r.returncode == 0, r.stdout + r.stderr)
if r.returncode == 0:
    t = json.load(open(table))
    rows = t["ranks"]
    check("table: weak mode, ranks 1 and 2", t["mode"] == "weak" and sorted(rows) == ["1", "2"], str(t))
    check("weak efficiency is t(1) / t(2)",
          abs(rows["2"]["efficiency"] - rows["1"]["median_seconds_per_epoch"] / rows["2"]["median_seconds_per_epoch"])
          < 1e-12, str(rows))
    check("per-phase times from -log_view", all(rows[k]["phases_seconds_per_epoch"].get("DyLossGrad", 0) > 0
                                                for k in rows), str(rows))
    check("the plot is a PNG", os.path.exists(png) and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n")
    check("the printed table has the efficiency column", "efficiency" in r.stdout, r.stdout)
    # the same two points as two single-rank-count tables, merged
    parts = []
    for k in ("1", "2"):
        one = dict(t, ranks={k: {key: v for key, v in rows[k].items() if key not in ("speedup", "efficiency")}})
        parts.append(os.path.join(work, "part%s.json" % k))
        json.dump(one, open(parts[-1], "w"))
    merged = os.path.join(work, "merged.json")
    r = subprocess.run([sys.executable, tool, "--collect", *parts, "--json", merged], capture_output=True, text=True)
    check("--collect merges the points", r.returncode == 0, r.stdout + r.stderr)
    if r.returncode == 0:
        m = json.load(open(merged))["ranks"]
        check("--collect gives the same speed-up and efficiency",
              all(abs(m[k][x] - rows[k][x]) < 1e-12 for k in rows for x in ("speedup", "efficiency")), f"{m} vs {rows}")
sys.exit(1 if failures else 0)
