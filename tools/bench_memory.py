#!/usr/bin/env python3
"""Peak memory per rank of a training run against each rank's share of the data (not a test).

usage: bench_memory.py [--frames 2000000] [--features 100] [--ranks 1,2,4] [--program build/dynae-mpi]
                       [--work /tmp/dy_bench_memory] [--epochs 1] [--set KEY=VALUE ...] [--fit]
                       [--keep] [--json OUT.json]

Writes FRAMES x FEATURES float32 frames (an AR(1) process, made with numpy in pieces) to
WORK/data.h5, runs PROGRAM on them at each rank count (the warm-up epoch and the final results by
default) with every rank started under a small wrapper that reports the peak resident set
(getrusage's ru_maxrss) of the process it starts, and does the same on 1000 frames of the same
features for the fixed part (libraries, MPI, PETSc, HDF5 and the model's buffers). Prints, per
rank count, the share of the data per rank (frames x features x 4 bytes / P), the largest rank's
peak, and (peak - fixed) / share. Buffers capped in size (the 16 MiB pieces of reading, of the
exchange and of the reconstruction, MPI-IO's collective buffers) are part of what does not grow
with the data, yet 1000 frames do not fill them; --fit therefore also runs FRAMES / 2 frames at
every rank count and reports the slope of the peak against the share (what each further byte of
data costs per rank) and the intercept (the part that does not grow). --set passes a key to every
run (e.g. --set data.placement=block). The data file is deleted at the end unless --keep."""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys

MB = 1024.0 * 1024.0


def wrapped():
    """The per-rank wrapper: runs the command, prints its peak RSS, exits with its code."""
    cmd = sys.argv[sys.argv.index("--") + 1:]
    rc = subprocess.call(cmd, stdout=subprocess.DEVNULL)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    rank = os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0"))
    print(f"bench_memory rank {rank} peak_kib {peak_kib} rc {rc}", flush=True)
    sys.exit(rc)


def make_data(path, frames, features, seed=0):
    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    piece = max(1, (64 << 20) // (4 * features))
    x = np.zeros(features, dtype=np.float32)
    with h5py.File(path, "w") as f:
        d = f.create_dataset("x", (frames, features), dtype="float32")
        for start in range(0, frames, piece):
            n = min(piece, frames - start)
            noise = rng.standard_normal((n, features), dtype=np.float32)
            # AR(1) with coefficient 0.9 along the frames: x_t = 0.9 x_{t-1} + e_t
            block = np.empty((n, features), dtype=np.float32)
            for t in range(n):
                x = np.float32(0.9) * x + noise[t]
                block[t] = x
            d[start:start + n] = block


def run(a, ranks, data, toml_dir, tag):
    toml = os.path.join(toml_dir, f"{tag}.toml")
    with open(toml, "w") as f:
        f.write(f'[data]\ninput = ["{data}:/x"]\n[train]\nepochs = {a.epochs}\n'
                f'[output]\ndir = "{os.path.join(toml_dir, "out-" + tag)}"\nquiet = true\n')
    cmd = [a.mpiexec, "-n", str(ranks), "--oversubscribe", sys.executable, os.path.abspath(__file__), "--wrap", "--",
           a.program, toml] + [arg for kv in a.set for arg in ("--set", kv)]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    peaks = [int(line.split()[4]) * 1024 for line in p.stdout.splitlines() if line.startswith("bench_memory rank")]
    if p.returncode != 0 or len(peaks) != ranks:
        sys.exit(f"bench_memory: {' '.join(cmd)} failed (exit {p.returncode}):\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return peaks


def main():
    if "--wrap" in sys.argv:
        return wrapped()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=2000000)
    ap.add_argument("--features", type=int, default=100)
    ap.add_argument("--ranks", default="1,2,4")
    ap.add_argument("--program", default="build/dynae-mpi")
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--work", default="/tmp/dy_bench_memory")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a dynae-mpi --set for every run (repeatable)")
    ap.add_argument("--fit", action="store_true", help="also run half the frames: slope and intercept")
    ap.add_argument("--keep", action="store_true", help="keep the data file")
    ap.add_argument("--json", help="also write the rows to this file")
    a = ap.parse_args()
    a.program = os.path.abspath(a.program)
    os.makedirs(a.work, exist_ok=True)
    big, small = os.path.join(a.work, "data.h5"), os.path.join(a.work, "fixed.h5")
    if not os.path.exists(big):
        make_data(big, a.frames, a.features)
    make_data(small, 1000, a.features)
    half = os.path.join(a.work, "half.h5")
    if a.fit and not os.path.exists(half):
        make_data(half, a.frames // 2, a.features)
    rows = []
    try:
        for P in [int(r) for r in a.ranks.split(",")]:
            fixed = max(run(a, P, small, a.work, f"fixed-{P}"))
            peak = max(run(a, P, big, a.work, f"data-{P}"))
            share = a.frames * a.features * 4 / P
            row = {"ranks": P, "share_mb": share / MB, "peak_mb": peak / MB, "fixed_mb": fixed / MB,
                   "shares": (peak - fixed) / share}
            text = (f"{P} rank(s): share {share / MB:8.1f} MB  peak {peak / MB:8.1f} MB  fixed {fixed / MB:6.1f} MB"
                    f"  (peak - fixed) / share {(peak - fixed) / share:5.2f}")
            if a.fit:
                peak_half = max(run(a, P, half, a.work, f"half-{P}"))
                share_half = (a.frames // 2) * a.features * 4 / P
                slope = (peak - peak_half) / (share - share_half)
                row.update(half_peak_mb=peak_half / MB, slope=slope, intercept_mb=(peak - slope * share) / MB)
                text += f"  | half: peak {peak_half / MB:8.1f} MB; slope {slope:5.2f}, intercept {row['intercept_mb']:6.1f} MB"
            rows.append(row)
            print(text, flush=True)
    finally:
        if not a.keep:
            os.remove(big)
            if os.path.exists(half):
                os.remove(half)
        os.remove(small)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"frames": a.frames, "features": a.features, "set": a.set, "rows": rows}, f, indent=1)
    shutil.rmtree(os.path.join(a.work, "out-fixed-1"), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
