#!/usr/bin/env python3
"""The distributed TICA against a NumPy TICA written from SPEC section 10's equations.

usage: check_tica.py --driver EXE --dir DIR [--launcher MPIEXEC -n P ...] [--only CASE ...]

Each case writes trajectories into DIR/CASE.h5, runs the driver (tica_driver, double precision)
under the launcher and compares mean, eigenvalues, timescales, eigenvectors and the projected
latent with the reference: relative 1e-10 (latent and eigenvectors relative to their largest
entry per component). The cases: ordinary data (several trajectories, D = 37 with blocks of 8,
rounds of 16 frames); aligned coordinates of a rigid-ish body (C0 loses 6 directions); a constant
feature and an exact linear dependency with standardize off (dropped, not divided by), on the
default blocks of 64, larger than the matrix; the same
asking for more components than remain (exit 2, clear message); five features on blocks of 8
(one block for all ranks) with a trajectory shorter than the rank count. Two more with --only:
D = 150 on blocks of 64 with 4 components ("wide"), and a leading eigenvalue that is negative
("negative"). Exit 0 when all hold."""
import argparse
import os
import subprocess
import sys

import h5py
import numpy as np

TOL = 1e-10


def reference(trajs, lag, eps, k, scaling):
    """TICA from the equations: reversible, mean-free, no Bessel correction, epsilon cut."""
    X = np.concatenate([t[:-lag] for t in trajs if len(t) > lag])
    Y = np.concatenate([t[lag:] for t in trajs if len(t) > lag])
    n = len(X)
    mu = (X.sum(0) + Y.sum(0)) / (2 * n)
    X, Y = X - mu, Y - mu
    c0 = (X.T @ X + Y.T @ Y) / (2 * n)
    ct = (X.T @ Y + Y.T @ X) / (2 * n)
    s, v = np.linalg.eigh(c0)
    keep = s >= eps
    w = v[:, keep] / np.sqrt(s[keep])
    lam, q = np.linalg.eigh(w.T @ ct @ w)
    order = sorted(range(len(lam)), key=lambda j: (-abs(lam[j]), -lam[j]))[:k]
    lam, u = lam[order], w @ q[:, order]
    for j in range(u.shape[1]):
        if u[np.argmax(np.abs(u[:, j])), j] < 0:
            u[:, j] = -u[:, j]
    ts = -lag / np.log(np.abs(lam))
    f = lam if scaling == "kinetic_map" else np.ones_like(lam)
    latent = [(t - mu) @ u * f for t in trajs]
    return dict(mean=mu, eigenvalues=lam, timescales=ts, eigenvectors=u, latent=latent, kept=int(keep.sum()))


def slow_process(rng, frames, rates, noise=1.0):
    """Independent AR(1) processes with the given autocorrelations per frame."""
    z = np.zeros((frames, len(rates)))
    for t in range(1, frames):
        z[t] = rates * z[t - 1] + noise * np.sqrt(1 - rates**2) * rng.standard_normal(len(rates))
    return z


def case_ordinary(rng):
    D = 37
    rates = np.linspace(0.97, 0.2, D)
    mix = rng.standard_normal((D, D))
    trajs = [slow_process(rng, f, rates) @ mix + 5.0 for f in (400, 250, 37)]
    return trajs, dict(lag=3, eps=1e-6, k=5, scaling="kinetic_map", nb=8, chunk=16)


def kabsch(x, ref):
    """x (atoms, 3) rotated and translated onto ref (no reflection)."""
    xc, rc = x - x.mean(0), ref - ref.mean(0)
    u, _, vt = np.linalg.svd(xc.T @ rc)
    d = np.sign(np.linalg.det(u @ vt))
    r = u @ np.diag([1, 1, d]) @ vt
    return xc @ r + ref.mean(0)


def random_rotation(rng):
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def case_aligned(rng):
    atoms = 12
    body = rng.standard_normal((atoms, 3)) * 2.0
    modes = rng.standard_normal((8, atoms * 3))
    rates = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    trajs, ref = [], None
    for frames in (300, 220):
        z = slow_process(rng, frames, rates, 0.15) @ modes + 0.05 * rng.standard_normal((frames, atoms * 3))
        out = np.empty((frames, atoms * 3))
        for t in range(frames):
            x = (body + z[t].reshape(atoms, 3)) @ random_rotation(rng).T + rng.standard_normal(3) * 10
            ref = x if ref is None else ref
            out[t] = kabsch(x, ref).ravel()
        trajs.append(out)
    return trajs, dict(lag=2, eps=1e-6, k=6, scaling="kinetic_map", nb=8, chunk=64, kept=atoms * 3 - 6)


def case_constant(rng, k=4):
    D = 10
    rates = np.linspace(0.9, 0.3, D)
    mix = rng.standard_normal((D, D))
    trajs = []
    for f in (200, 150):
        x = slow_process(rng, f, rates) @ mix
        x = np.hstack([x, np.full((f, 1), 3.25), x[:, :1] - 2 * x[:, 1:2]])  # constant; dependent
        trajs.append(x)
    return trajs, dict(lag=1, eps=1e-6, k=k, scaling="none", nb=0, chunk=0)  # default blocks of 64 > D


def case_tiny(rng):
    D = 5
    rates = np.array([0.9, 0.7, 0.5, 0.3, 0.1])
    mix = rng.standard_normal((D, D))
    trajs = [slow_process(rng, f, rates) @ mix for f in (120, 3, 60)]
    return trajs, dict(lag=1, eps=1e-6, k=3, scaling="kinetic_map", nb=8, chunk=7)


def case_wide(rng):
    """Many blocks wide (D = 150 on the default blocks of 64) and few components: the whitened Ct's
    eigenvectors are computed for an index range only, which must still be back-transformed."""
    D = 150
    rates = np.linspace(0.95, 0.05, D)
    mix = rng.standard_normal((D, D))
    trajs = [slow_process(rng, f, rates) @ mix for f in (700, 500)]
    return trajs, dict(lag=1, eps=1e-6, k=4, scaling="kinetic_map", nb=0, chunk=0)


def case_negative(rng):
    """The largest |lambda| is negative (a feature that flips sign every frame), the next ones
    positive: the k leading components lie at both ends of the spectrum."""
    D = 20
    rates = np.concatenate([[-0.97], np.linspace(0.9, 0.1, D - 1)])
    mix = rng.standard_normal((D, D))
    trajs = [slow_process(rng, f, rates) @ mix for f in (400, 300)]
    return trajs, dict(lag=1, eps=1e-6, k=3, scaling="kinetic_map", nb=8, chunk=32)


CASES = {
    "ordinary": case_ordinary,
    "aligned": case_aligned,
    "constant": case_constant,
    "constant_too_many": lambda rng: case_constant(rng, k=11),
    "tiny": case_tiny,
}
# Run with --only (tests tica_numpy_range_*): components taken from part of the spectrum.
EXTRA_CASES = {"wide": case_wide, "negative": case_negative}


def rel_err(a, b, scale=None):
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        return np.inf
    s = np.abs(b) if scale is None else scale
    return float(np.max(np.abs(a - b) / np.maximum(s, 1e-300))) if a.size else 0.0


def run_case(name, args):
    rng = np.random.default_rng(sum(map(ord, name)))
    trajs, p = {**CASES, **EXTRA_CASES}[name](rng)
    path = os.path.join(args.dir, f"{name}.h5")
    out = os.path.join(args.dir, f"{name}.out.h5")
    with h5py.File(path, "w") as f:
        f.attrs["ntraj"] = np.int32(len(trajs))
        for i, t in enumerate(trajs):
            f[f"traj{i}"] = t
    if os.path.exists(out):
        os.remove(out)
    cmd = args.launcher + [args.driver, path, out, str(p["lag"]), repr(p["eps"]), str(p["k"]), p["scaling"],
                           str(p["nb"]), str(p["chunk"])]
    r = subprocess.run(cmd, capture_output=True, text=True)
    ref = reference(trajs, p["lag"], p["eps"], p["k"], p["scaling"])
    bad = []
    if name == "constant_too_many":
        msg = r.stderr + r.stdout
        if r.returncode != 2:
            bad.append(f"exit code {r.returncode}, expected 2")
        for want in ("k = 11", f"only {ref['kept']} components", "feature 10", "lower k to at most 10"):
            if want not in msg:
                bad.append(f"message lacks '{want}': {msg.strip()[-600:]}")
        if msg.count("dynae-mpi: error:") != 1:
            bad.append("the message is not printed exactly once")
        return bad
    if r.returncode != 0:
        return [f"driver failed (exit {r.returncode}): {r.stderr[-2000:]}"]
    with h5py.File(out, "r") as f:
        got = {key: f[key][()] for key in ("mean", "eigenvalues", "timescales", "eigenvectors")}
        got["latent"] = [f[f"latent/traj{i}"][()] for i in range(len(trajs))]
        got["kept"] = int(f.attrs["kept"])
    if "kept" in p and ref["kept"] != p["kept"]:
        bad.append(f"the case is not what it claims: the reference keeps {ref['kept']} components, not {p['kept']}")
    if got["kept"] != ref["kept"]:
        bad.append(f"kept {got['kept']} components, reference {ref['kept']}")
    errs = {
        "mean": rel_err(got["mean"], ref["mean"], np.max(np.abs(ref["mean"])) + 1e-300),
        "eigenvalues": rel_err(got["eigenvalues"], ref["eigenvalues"]),
        "timescales": rel_err(got["timescales"], ref["timescales"]),
        "eigenvectors": rel_err(got["eigenvectors"], ref["eigenvectors"], np.max(np.abs(ref["eigenvectors"]), 0)),
    }
    col = np.max(np.abs(np.concatenate(ref["latent"])), 0)
    errs["latent"] = max(rel_err(g, e, col) for g, e in zip(got["latent"], ref["latent"]))
    for key, e in errs.items():
        print(f"  {name:10s} {key:13s} max relative error {e:.2e}")
        if not e <= TOL:
            bad.append(f"{key}: relative error {e:.3e} > {TOL:g}")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--only", nargs="*", default=list(CASES), choices=list(CASES) + list(EXTRA_CASES))
    ap.add_argument("--launcher", nargs=argparse.REMAINDER, default=[])
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    failed = 0
    for name in args.only:
        bad = run_case(name, args)
        print(f"{'FAIL' if bad else 'ok'}: {name}")
        for b in bad:
            print("   ", b)
        failed += bool(bad)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
