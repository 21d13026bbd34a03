#!/usr/bin/env python3
"""tools/smpi_projection.py on a tiny simulated cluster (2 cores per node, 2 and 4 ranks) from a
given measurement: the JSON has the documented layout, efficiencies are in (0, 1] (also when the
measured epoch has more steps than pairs / B, as bins end with partial batches), the slower network
gives the slower epoch, a global batch adds the sliced Wasserstein's per-step exchange (on top of
its 1/P share of the step's compute; also beyond 8 ranks, where the split way reduce-scatters the
rows' gradients), the hierarchical sum has the shared-memory copies of the trainer's hier way on its
path (also in --check-local's 2-rank replay), and bad arguments exit 2. Exit 77 (skipped) without SimGrid."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "smpi_projection.py")
if shutil.which("smpicc") is None or shutil.which("smpirun") is None:
    print("SKIP: SimGrid's smpicc/smpirun are not installed (Debian: libsimgrid-dev simgrid)")
    sys.exit(77)
failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name, flush=True)
    if not cond:
        print(detail[-3000:])
        failures.append(name)


work = tempfile.mkdtemp()
try:
    measured = {"source": "test", "step_seconds": 3e-4, "epoch_seconds": 0.02, "steps_per_epoch": 100,
                "batch_size": 64, "gradient_values": 7000, "pairs": 3200, "features": 2, "bins": 50,
                "max_centers": 200, "latent_dim": 2}
    mpath = os.path.join(work, "m.json")
    json.dump({"measured": measured}, open(mpath, "w"))
    epochs = {}
    for net in ("ib", "ethernet"):
        out = os.path.join(work, net + ".json")
        r = subprocess.run([sys.executable, tool, "--ranks", "2,4", "--network", net, "--measured", mpath,
                            "--cores-per-node", "2", "--sim-steps", "2", "--json", out], capture_output=True, text=True)
        check(f"{net}: runs", r.returncode == 0, r.stdout + r.stderr)
        if r.returncode:
            continue
        t = json.load(open(out))
        rows = t["rows"]
        check(f"{net}: layout", t["network"] == net and isinstance(t["assumptions"], dict)
              and [x["ranks"] for x in rows] == [2, 4]
              and all(k in x for x in rows for k in ("seconds_per_epoch", "weak_efficiency", "strong_efficiency")),
              json.dumps(t)[:2000])
        check(f"{net}: efficiencies in (0, 1]", all(0 < x[k] <= 1.0 + 1e-9 for x in rows
                                                   for k in ("weak_efficiency", "strong_efficiency")), str(rows))
        check(f"{net}: assumptions printed next to the numbers", "Gb/s" in r.stdout and "ranks per node" in r.stdout,
              r.stdout)
        epochs[net] = rows[-1]["seconds_per_epoch"]
    if len(epochs) == 2:
        check("ethernet is slower than ib", epochs["ethernet"] > epochs["ib"], str(epochs))
    # a global batch: each rank computes 1/P of a step, and the step also moves the batch's rows
    messages = {}
    for batch in ("per_rank", "global"):
        out = os.path.join(work, batch + ".json")
        r = subprocess.run([sys.executable, tool, "--ranks", "4,16", "--network", "ethernet", "--measured", mpath,
                            "--cores-per-node", "2", "--sim-steps", "2", "--batch", batch, "--json", out],
                           capture_output=True, text=True)
        check(f"--batch {batch}: runs", r.returncode == 0, r.stdout + r.stderr)
        if r.returncode == 0:
            share = 1.0 if batch == "per_rank" else None
            messages[batch] = [x["simulated_seconds_per_step"] - measured["step_seconds"] * (share or 1.0 / x["ranks"])
                               for x in json.load(open(out))["rows"]]
    if len(messages) == 2:
        check("a global batch's step moves more than the gradient sum (gather at 4, split at 16 ranks)",
              all(g > p * 1.05 and p > 0 for g, p in zip(messages["global"], messages["per_rank"])), str(messages))
    # the hierarchical sum copies through shared memory inside a node: with a large gradient buffer,
    # a rank's path holds five copies (its slot, its chunk's sum, the leader's assembly and result,
    # the copy out) besides the leaders' MPI_Allreduce
    big = dict(measured, gradient_values=2500000)
    bpath = os.path.join(work, "big.json")
    json.dump({"measured": big}, open(bpath, "w"))
    out = os.path.join(work, "hier.json")
    r = subprocess.run([sys.executable, tool, "--ranks", "4", "--network", "ib", "--measured", bpath,
                        "--cores-per-node", "2", "--sim-steps", "2", "--check-local", "--json", out],
                       capture_output=True, text=True)
    check("hier: runs", r.returncode == 0, r.stdout + r.stderr)
    if r.returncode == 0:
        t = json.load(open(out))
        copy = big["gradient_values"] * 4 / 20e9
        moved = t["rows"][0]["simulated_seconds_per_step"] - big["step_seconds"]
        check("hier: five shared-memory copies on a rank's path", 5 * copy <= moved <= 5 * copy + 0.05,
              "%g s moved, copy %g s" % (moved, copy))
        loc = t["check_local"]
        check("--check-local: both ways at 2 ranks", loc and loc["simulated_shared_us"] >= 5 * copy * 1e6
              and loc["simulated_exchange_us"] > 0 and "shared memory" in r.stdout, json.dumps(loc))
    r = subprocess.run([sys.executable, tool, "--ranks", "0,4", "--measured", mpath], capture_output=True, text=True)
    check("bad --ranks: exit 2", r.returncode == 2, r.stdout + r.stderr)
finally:
    shutil.rmtree(work, ignore_errors=True)
sys.exit(1 if failures else 0)
