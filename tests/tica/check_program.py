#!/usr/bin/env python3
"""dynae-mpi's three uses of TICA (SPEC section 10), through the program itself.

usage: check_program.py --exe DYNAE_MPI --dir SCRATCH [--launcher MPIEXEC -n P ...]

The data: two float32 trajectories of 11 features, one of them constant (data.standardize off),
so C0 has a zero eigenvalue that must be dropped. Checked against check_tica.reference on the
same float32 values:
- model.type = "tica" at tica.lag = 3 > data.lag (partners fetched from other ranks): results.h5
  /tica/ mean, eigenvalues, timescales, eigenvectors to 1e-10, attribute lag, /latent (the
  kinetic map, in the program's precision) to 1e-5 of each TIC's range, no /reconstruction;
- tica.scaling = "none": /latent unscaled;
- data.tica_dim = 4 with a short training: the plan shows 4 features, /tica/ holds the TICA at
  data.lag, /latent has model.latent_dim columns;
- bad input exits 2 with one message naming the key, and writes nothing: tica_dim and latent_dim
  beyond the 10 components kept, a lag leaving no pair, an unknown tica.scaling, tica_dim with
  model.type = "tica"."""
import argparse
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_tica import reference, slow_process  # noqa: E402

TOML = """[data]
input = ["data.h5:/a", "data.h5:/b"]
lag = 1
test_fraction = 0.2
[model]
type = "{type}"
latent_dim = 2
encoder = [8]
decoder = [8]
prior = [8]
[cluster]
d_min = 50.0
[tica]
lag = {lag}
[train]
epochs = 2
batch_size = 16
[output]
dir = "out"
quiet = true
"""


def make_data(d):
    rng = np.random.default_rng(7)
    D = 10
    mix = rng.standard_normal((D, D))
    trajs = []
    for f in (300, 170):
        x = slow_process(rng, f, np.linspace(0.95, 0.3, D)) @ mix + 2.0
        trajs.append(np.hstack([x, np.full((f, 1), 1.5)]).astype(np.float32))
    with h5py.File(os.path.join(d, "data.h5"), "w") as f:
        f["a"], f["b"] = trajs
    return [t.astype(np.float64) for t in trajs]


def run(a, name, typ, lag, sets):
    d = os.path.join(a.dir, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    os.symlink(os.path.join(a.dir, "data.h5"), os.path.join(d, "data.h5"))
    with open(os.path.join(d, "in.toml"), "w") as f:
        f.write(TOML.format(type=typ, lag=lag))
    cmd = a.launcher + [a.exe, os.path.join(d, "in.toml")] + sum((["--set", s] for s in sets), [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p, os.path.join(d, "out", "results.h5")


def rel(a, b, scale):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.inf if a.shape != b.shape else float(np.max(np.abs(a - b) / scale))


def check_tica_group(f, ref, lag, k, bad, what):
    g = f["tica"]
    if int(g.attrs["lag"]) != lag:
        bad.append(f"{what}: /tica lag attribute {g.attrs['lag']}, expected {lag}")
    errs = {
        "mean": rel(g["mean"], ref["mean"], np.max(np.abs(ref["mean"]))),
        "eigenvalues": rel(g["eigenvalues"], ref["eigenvalues"], np.abs(ref["eigenvalues"])),
        "timescales": rel(g["timescales"], ref["timescales"], np.abs(ref["timescales"])),
        "eigenvectors": rel(g["eigenvectors"], ref["eigenvectors"], np.max(np.abs(ref["eigenvectors"]), 0)),
    }
    for key, e in errs.items():
        print(f"  {what}: /tica/{key} relative error {e:.2e}")
        if not e <= 1e-10:
            bad.append(f"{what}: /tica/{key} relative error {e:.3e}")
    if g["eigenvalues"].shape != (k,):
        bad.append(f"{what}: /tica/eigenvalues has shape {g['eigenvalues'].shape}, expected ({k},)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exe", required=True, help="the dynae-mpi program")
    ap.add_argument("--dir", required=True, help="scratch folder for data, inputs and results")
    ap.add_argument("--launcher", nargs=argparse.REMAINDER, default=[], help="mpiexec and its arguments")
    a = ap.parse_args()
    a.dir = os.path.abspath(a.dir)
    os.makedirs(a.dir, exist_ok=True)
    trajs = make_data(a.dir)
    bad = []

    for scaling in ("kinetic_map", "none"):
        what = f"model tica ({scaling})"
        p, res = run(a, f"tica_{scaling}", "tica", 3, [f"tica.scaling={scaling}"])
        if p.returncode != 0:
            bad.append(f"{what}: exit {p.returncode}: {p.stderr[-1500:]}")
            continue
        ref = reference(trajs, 3, 1e-6, 2, scaling)
        with h5py.File(res, "r") as f:
            check_tica_group(f, ref, 3, 2, bad, what)
            if "reconstruction" in f:
                bad.append(f"{what}: /reconstruction written without a decoder")
            col = np.max(np.abs(np.concatenate(ref["latent"])), 0)
            e = max(rel(f[f"latent/traj{i}"][()], ref["latent"][i], col) for i in range(2))
            print(f"  {what}: /latent relative error {e:.2e} (single precision)")
            if not e <= 1e-5:
                bad.append(f"{what}: /latent relative error {e:.3e}")
        if "10 of 11 components kept" not in p.stdout:
            bad.append(f"{what}: the summary lacks '10 of 11 components kept'")

    p, res = run(a, "tica_dim", "dynamicsae", 0, ["data.tica_dim=4"])
    if p.returncode != 0:
        bad.append(f"data.tica_dim: exit {p.returncode}: {p.stderr[-1500:]}")
    else:
        if "2 trajectories, 4 features" not in p.stdout:
            bad.append("data.tica_dim: the plan does not show 4 features")
        with h5py.File(res, "r") as f:
            check_tica_group(f, reference(trajs, 1, 1e-6, 4, "kinetic_map"), 1, 4, bad, "data.tica_dim")
            if f["latent/traj0"].shape != (300, 2):
                bad.append(f"data.tica_dim: /latent/traj0 has shape {f['latent/traj0'].shape}")

    errors = [
        ("tica_dim_too_large", "dynamicsae", 0, ["data.tica_dim=11"],
         ["data.tica_dim = 11", "only 10 components", "feature 10", "at most 10"]),
        ("latent_dim_too_large", "tica", 0, ["model.latent_dim=11"],
         ["model.latent_dim = 11", "only 10 components", "at most 10"]),
        ("lag_no_pair", "tica", 300, [], ["tica.lag = 300 leaves no pair", "300 frames"]),
        ("scaling_unknown", "tica", 0, ["tica.scaling=kinetic"], ["tica.scaling", "kinetic_map", "none"]),
        ("tica_dim_with_tica", "tica", 0, ["data.tica_dim=2"], ["data.tica_dim", "model.type = \"tica\""]),
    ]
    for name, typ, lag, sets, wants in errors:
        p, res = run(a, name, typ, lag, sets)
        if p.returncode != 2:
            bad.append(f"{name}: exit code {p.returncode}, expected 2: {p.stderr[-800:]}")
        for w in wants:
            if w not in p.stderr:
                bad.append(f"{name}: message lacks '{w}': {p.stderr.strip()[-600:]}")
        if p.stderr.count("dynae-mpi: error:") != 1:
            bad.append(f"{name}: the message is not printed exactly once")
        if os.path.exists(os.path.dirname(res)):
            bad.append(f"{name}: {os.path.dirname(res)} was written")
        said = [line for line in p.stderr.splitlines() if "error:" in line]
        print(f"  {name}: exit {p.returncode}: {said[0] if said else ''}")
    for b in bad:
        print("FAIL:", b)
    print("ok" if not bad else f"{len(bad)} failure(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
