#!/usr/bin/env python3
"""A restart keeps the data.standardize statistics it began with (SPEC section 9).

usage: check_statistics.py --exe DYNAE_MPI --mpiexec MPIEXEC --work DIR

Trains 2 epochs at 2 ranks on a small 3-feature set, then shifts every value of the data file by
+1 and scales the last feature by 3, and restarts for one more epoch at 2 ranks and, from the same
checkpoint, at 3 ranks. Statistics recomputed from the changed file would differ by exactly that;
the checkpoints written after the restarts must hold the saved ones, bit for bit, and the run must
not report different ones. Exit 0 when it holds, 1 otherwise."""
import argparse
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np


def run(a, ranks, out, *extra):
    cmd = [a.mpiexec, "--oversubscribe", "-n", str(ranks), a.exe, os.path.join(a.work, "in.toml"), "--quiet",
           "--set", f"output.dir={out}", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout[-3000:], p.stderr[-3000:])
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited {p.returncode}")


def stats(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ("input_mean", "input_scale")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", required=True)
    ap.add_argument("--mpiexec", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(size=(3000, 3)), axis=0) * np.array([0.01, 0.1, 1.0])
    data = os.path.join(a.work, "x.h5")
    with h5py.File(data, "w") as f:
        f["x"] = x.astype(np.float32)
    with open(os.path.join(a.work, "in.toml"), "w") as f:
        f.write('[data]\ninput = ["x.h5:/x"]\n[model]\nencoder = [8]\ndecoder = [8]\nprior = [8]\n'
                '[cluster]\nd_min = 0.5\n[train]\nepochs = 2\nbatch_size = 64\n[output]\ncheckpoint_every = 1\n')
    first = os.path.join(a.work, "first")
    run(a, 2, first)
    saved = stats(os.path.join(first, "checkpoint.h5"))
    with h5py.File(data, "r+") as f:
        f["x"][...] = (x + 1.0) * np.array([1.0, 1.0, 3.0])
    bad = []
    for ranks in (2, 3):
        out = os.path.join(a.work, f"restart{ranks}")
        shutil.copytree(first, out)
        run(a, ranks, out, "--restart", "--set", "train.epochs=3")
        now = stats(os.path.join(out, "checkpoint.h5"))
        for k in saved:
            if not np.array_equal(saved[k], now[k]):
                bad.append(f"{ranks} ranks: {k} {now[k]} after the restart, saved {saved[k]}")
    # The control: a fresh run on the changed file computes other statistics.
    fresh = os.path.join(a.work, "fresh")
    run(a, 2, fresh)
    with h5py.File(os.path.join(fresh, "checkpoint.h5"), "r") as f:
        if np.allclose(f["input_mean"][()], saved["input_mean"]):
            bad.append("the changed file gives the same statistics: the check cannot tell")
    for b in bad:
        print("FAIL:", b)
    print(f"{0 if bad else 1} passed, {1 if bad else 0} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
