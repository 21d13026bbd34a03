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
{model}"""
CONV = '[model]\nnetwork = "conv"\nencoder = [32]\ndecoder = [32]\n'


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
    with h5py.File(os.path.join(a.dir, "img.h5"), "w") as f:  # images for model.network = "conv"
        f["small"] = np.zeros((10, 32, 32), np.float32)
        f["gray"] = np.zeros((20, 64, 64), np.float32)
        f["rgb"] = np.zeros((20, 3, 64, 64), np.float32)

    cases = [
        # name, inputs, extra args, exit code, substrings of stderr (bad) or stdout (good)
        ("nan", '"good.h5:/traj/x", "good.h5:/bad"', [], 2,
         ["data.input[1]", "good.h5", "dataset /bad", "non-finite", "frame 40, feature 1"]),
        ("missing", '"gone.h5:/x"', [], 2, ["data.input[0]", "gone.h5", "dataset /x", "cannot read the file"]),
        ("good", '"good.h5:/traj/x"', ["--check"], 0,
         ["# data: 1 trajectory, 3 features, lag 2", "48 pairs", "# pairs per rank"]),
        # images: (frames, 64, 64) and (frames, C, 64, 64) flattened to C 64 64 features; others refused
        ("conv_small", '"img.h5:/small"', [], 2,
         ["data.input[0]", "img.h5", "dataset /small", "(10, 32, 32)", 'model.network = "conv" needs images of 64 x 64']),
        ("conv_features", '"good.h5:/traj/x"', [], 2, ["data.input[0]", "(50, 3)", "needs images"]),
        ("conv_gray", '"img.h5:/gray"', ["--check"], 0, ["# data: 1 trajectory, 4096 features"]),
        ("conv_rgb", '"img.h5:/rgb"', ["--check"], 0, ["# data: 1 trajectory, 12288 features"]),
    ]
    failed = 0
    for name, inputs, extra, code, expect in cases:
        model = CONV if name.startswith("conv_") else ""
        path = os.path.join(a.dir, name + ".toml")
        with open(path, "w") as f:
            f.write(TOML.format(inputs=inputs, model=model))
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
