"""tools/bench_epoch.py end to end: usage test_bench_epoch.py DYNAE_MPI MPIEXEC (exit 0: pass).

The reference code is not part of the project, so a stand-in plays it: a main.py that checks the
configuration file bench_epoch.py wrote for it (model, widths, batch, d_min, epochs, the .npy input
with the data's shape), takes a second and reports a training time of 3 s, as the reference's log
does. dynae-mpi runs for real on a small three-well. Checked: the reference's seconds per epoch
(3 / epochs), dynae-mpi's epochs (whole runs of --epochs, at least one per repeat, their seconds
from results.h5), the ratio printed and stored, and exit code 2 for a missing reference, a bad
--cores and a missing dataset."""
import json
import os
import statistics
import subprocess
import sys
import tempfile

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")

STAND_IN = r'''
import configparser, os, sys, time
import numpy as np
cfg = configparser.ConfigParser()
cfg.read(sys.argv[sys.argv.index("-config") + 1])
m, t, d = cfg["Model Parameters"], cfg["Training Parameters"], cfg["Data"]
want = {"model": "DynamicsAE", "neuron_num1": "[8]", "neuron_num2": "[8]", "encoder_type": "fc_encoder",
        "min_dist": "4.0"}
for k, v in want.items():
    if m[k] != v:
        sys.exit(f"{k} = {m[k]}, expected {v}")
if t["batch_size"] != "32" or t["max_epochs"] != "2":
    sys.exit("batch_size or max_epochs wrong")
x = np.load(d["input_data"].strip("[]"))
if x.shape != (3000, 2):
    sys.exit(f"input shape {x.shape}")
time.sleep(1.0)
os.makedirs("Results", exist_ok=True)
with open("Results/DynAE_train.log", "w") as f:
    f.write("Epoch: 2\n\nTotal training time: 3.000000\n")
'''


def main():
    exe, mpiexec = sys.argv[1], sys.argv[2]
    bad = []
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "tw.h5")
        subprocess.run([sys.executable, os.path.join(TOOLS, "gen_three_well.py"), "--frames", "3000", "--out", data,
                        "--quiet"], check=True)
        ref = os.path.join(tmp, "ref")
        os.makedirs(ref)
        with open(os.path.join(ref, "main.py"), "w") as fp:
            fp.write(STAND_IN)
        out = os.path.join(tmp, "be")
        base = [sys.executable, os.path.join(TOOLS, "bench_epoch.py"), "--exe", exe, "--mpiexec", mpiexec]
        opts = ["--width", "8", "--epochs", "2", "--repeats", "2", "--batch", "32", "--d-min", "4", "--out", out,
                "--python", sys.executable]
        p = subprocess.run(base + [data + ":/observed", "--reference", ref, *opts], capture_output=True, text=True)
        print(p.stdout, p.stderr)
        if p.returncode != 0:
            bad.append(f"exit code {p.returncode}")
        else:
            with open(os.path.join(out, "bench_epoch.json")) as fp:
                r = json.load(fp)
            if r["reference_epoch_seconds"] != [1.5, 1.5]:
                bad.append(f"reference seconds per epoch {r['reference_epoch_seconds']}, expected [1.5, 1.5]")
            dyn = r["dynae_epoch_seconds"]
            if len(dyn) < 4 or len(dyn) % 2 or len(r["dynae_cpu_seconds_per_run"]) != len(dyn) // 2:
                bad.append(f"{len(dyn)} dynae-mpi epochs from {len(r['dynae_cpu_seconds_per_run'])} runs")
            elif not all(0 < s < 30 for s in dyn):
                bad.append(f"dynae-mpi epoch seconds {dyn}")
            else:
                ratio = 1.5 / statistics.median(dyn)
                if abs(r["ratio_median"] - ratio) > 1e-9 * ratio:
                    bad.append(f"ratio {r['ratio_median']}, expected {ratio}")
                if f"median seconds per epoch: {ratio:.1f}x" not in p.stdout:
                    bad.append("the ratio line is missing from the table")
        for args, what in (([data + ":/observed", "--reference", os.path.join(tmp, "none"), *opts], "no reference"),
                           ([data + ":/observed", "--reference", ref, "--cores", "1,1", *opts], "equal cores"),
                           ([data + ":/missing", "--reference", ref, *opts], "missing dataset")):
            q = subprocess.run(base + args, capture_output=True, text=True)
            if q.returncode != 2:
                bad.append(f"{what}: exit code {q.returncode}, expected 2 ({q.stderr.strip()[-200:]})")
    for b in bad:
        print("FAIL:", b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
