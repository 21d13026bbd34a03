"""dynae-mpi itself on bad and good data: a data error stops a full run with exit code 2 and one
message naming file, dataset and frame, before anything is written; --check on good data prints
the plan and writes nothing.

usage: check_cli.py --exe DYNAE_MPI --dir SCRATCH [--launcher MPIEXEC ARGS...]
"""
import argparse
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

TOML = """[data]
input = [{inputs}]
lag = 2
[train]
epochs = 2
batch_size = 8
[output]
dir = "out"
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--launcher", nargs=argparse.REMAINDER, default=[])
    a = ap.parse_args()
    shutil.rmtree(a.dir, ignore_errors=True)
    os.makedirs(a.dir)
    x = np.arange(50 * 3, dtype=np.float32).reshape(50, 3)
    with h5py.File(os.path.join(a.dir, "good.h5"), "w") as f:
        f["traj/x"] = x
        bad = x.copy()
        bad[40, 1] = np.nan  # in the second rank's block at 2 ranks
        bad[45, 0] = np.inf
        f["bad"] = bad.astype(np.float64)

    cases = [
        # name, inputs, extra args, exit code, substrings of stderr (bad) or stdout (good)
        ("nan", '"good.h5:/traj/x", "good.h5:/bad"', [], 2,
         ["data.input[1]", "good.h5", "dataset /bad", "non-finite", "frame 40, feature 1"]),
        ("missing", '"gone.h5:/x"', [], 2, ["data.input[0]", "gone.h5", "dataset /x", "cannot read the file"]),
        ("good", '"good.h5:/traj/x"', ["--check"], 0,
         ["# data: 1 trajectory, 3 features, lag 2", "48 pairs", "# pairs per rank"]),
    ]
    failed = 0
    for name, inputs, extra, code, expect in cases:
        path = os.path.join(a.dir, name + ".toml")
        with open(path, "w") as f:
            f.write(TOML.format(inputs=inputs))
        p = subprocess.run(a.launcher + [a.exe, path] + extra, cwd=a.dir, capture_output=True, text=True)
        text = p.stderr if code else p.stdout
        problems = []
        if p.returncode != code:
            problems.append(f"exit code {p.returncode}, expected {code}")
        problems += [f"lacks '{s}'" for s in expect if s not in text]
        if code and text.count("dynae-mpi: error:") != 1:
            problems.append("the error should be printed exactly once")
        if "HDF5-DIAG" in p.stderr:
            problems.append("HDF5's error stack was printed")
        if os.path.exists(os.path.join(a.dir, "out")):
            problems.append("the output folder was created")
        print(f"{name}: exit {p.returncode}: {p.stderr.strip() if code else 'ok'}")
        for s in problems:
            print(f"  FAIL {name}: {s}\n--- stdout\n{p.stdout}--- stderr\n{p.stderr}")
        failed += bool(problems)
    print(f"{failed} of {len(cases)} cases failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
