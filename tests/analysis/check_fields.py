#!/usr/bin/env python3
"""Checks of results.h5 /model/ and /fields/ (SPEC section 12), recomputed with numpy.

usage:
  check_fields.py model RESULTS.h5 DATA.h5:/DATASET [--tol 1e-5]
      the latent recomputed from /model/ (torch layout, the standardisation applied) against
      /latent/traj0, to tol relative to the largest latent coordinate
  check_fields.py fields RESULTS.h5 [--truth DATA.h5:/truth --max-rms-truth X] [--max-rms-force X]
      shapes, shifts and NaNs of /fields/, the histogram against /latent, the attribute
      rms_difference_kT recomputed, and with --truth the histogram free energy mapped onto the true
      coordinates against the generator's V/kT (RMS over cells with >= 100 frames)
  check_fields.py same RESULTS.h5 RESULTS.h5... [--tol 1e-8]
      /fields/free_energy_force (and force, diffusion, count) of every file equal to the first's
Exit 0 when every check holds, 1 otherwise (with a line saying which)."""
import argparse
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import gen_three_well  # noqa: E402  (the potential of the example data)

MIN_COUNT = 100


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def dataset(ref):
    path, name = ref.rsplit(":", 1)
    with h5py.File(path, "r") as f:
        return f[name][()].astype(np.float64), dict(f.attrs)


def encode(model, x):
    """The encoder of /model/ on x (n, D), in float64."""
    enc = model["encoder"]
    act = enc.attrs["activation"]
    act = act.decode() if isinstance(act, bytes) else act
    h = (x - model["input_mean"][()]) / model["input_scale"][()]
    layers = int(enc.attrs["layers"])
    for i in range(layers):
        h = h @ enc["W%d" % i][()].T + enc["b%d" % i][()]
        if i < layers - 1:
            h = np.maximum(h, 0.0) if act == "relu" else np.tanh(h)
    return h


def check_model(args):
    x, _ = dataset(args.data)
    with h5py.File(args.results, "r") as r:
        m = r["model"]
        for key in ("D", "Dy", "latent_dim", "features", "atoms"):
            if key not in m.attrs:
                fail("/model has no attribute %s" % key)
        for net in ("encoder", "decoder", "force", "logdiff"):
            g = m[net]
            for i in range(int(g.attrs["layers"])):
                if g["W%d" % i].ndim != 2 or g["b%d" % i].shape != (g["W%d" % i].shape[0],):
                    fail("/model/%s layer %d: W %s, b %s" % (net, i, g["W%d" % i].shape, g["b%d" % i].shape))
        z = encode(m, x)
        ref = r["latent/traj0"][()].astype(np.float64)
        act = m["encoder"].attrs["activation"]
    err = np.abs(z - ref).max() / np.abs(ref).max()
    print("latent from /model/ (%s encoder) against /latent/traj0: max difference %.2e of the largest coordinate"
          % (act, err))
    if not err <= args.tol:
        fail("the latent recomputed from /model/ differs by %.2e > %.0e" % (err, args.tol))


def check_fields(args):
    with h5py.File(args.results, "r") as r:
        F = r["fields"]
        z = r["latent/traj0"][()].astype(np.float64)
        d = z.shape[1]
        axes = [F["axis%d" % j][()] for j in range(d)]
        n = tuple(len(a) for a in axes)
        got = {k: F[k][()] for k in ("force", "diffusion", "count", "free_energy_hist", "free_energy_force")}
        rms_attr = float(F.attrs["rms_difference_kT"])
    want = {"force": n + (d,), "diffusion": n + (d,), "count": n, "free_energy_hist": n, "free_energy_force": n}
    for k, shape in want.items():
        if got[k].shape != shape:
            fail("/fields/%s has shape %s, expected %s" % (k, got[k].shape, shape))
    count, fh, ff = got["count"], got["free_energy_hist"], got["free_energy_force"]
    # the grid covers every point; counts are the histogram of /latent
    for j in range(d):
        h = axes[j][1] - axes[j][0]
        if not (axes[j][0] - h / 2 <= z[:, j].min() and z[:, j].max() <= axes[j][-1] + h / 2 + 1e-9 * abs(h)):
            fail("axis %d [%g, %g] does not cover the latent [%g, %g]" % (j, axes[j][0], axes[j][-1], z[:, j].min(),
                                                                           z[:, j].max()))
    if count.sum() != len(z):
        fail("the histogram holds %d frames, /latent %d" % (count.sum(), len(z)))
    idx = [np.clip(np.floor((z[:, j] - (axes[j][0] - (axes[j][1] - axes[j][0]) / 2))
                            / (axes[j][1] - axes[j][0])).astype(int), 0, n[j] - 1) for j in range(d)]
    cell = np.ravel_multi_index(idx, n)
    mine = np.bincount(cell, minlength=int(np.prod(n))).reshape(n)
    moved = np.abs(mine - count).sum() / 2
    if moved > 1e-3 * len(z):  # frames on a cell border may fall either side by rounding
        fail("the histogram differs from that of /latent in %d frames" % moved)
    if not np.array_equal(np.isnan(fh), count == 0):
        fail("free_energy_hist is NaN elsewhere than in the empty cells")
    if np.nanmin(fh) != 0 or ff.min() != 0 or not np.isfinite(ff).all():
        fail("the free energies are not shifted to minimum 0 (hist %g, force %g)" % (np.nanmin(fh), ff.min()))
    if (got["diffusion"] <= 0).any():
        fail("a diffusion value is not positive")
    well = count >= MIN_COUNT
    w = count[well].astype(np.float64)
    shift = np.sum(w * (fh[well] - ff[well])) / w.sum()
    rms = np.sqrt(np.mean((ff[well] + shift - fh[well]) ** 2))
    print("free energy from the force against the histogram: RMS %.3f kT over %d cells with >= %d frames"
          % (rms, well.sum(), MIN_COUNT))
    if abs(rms - rms_attr) > 1e-9 * max(rms, 1):
        fail("rms_difference_kT is %.6g, recomputed %.6g" % (rms_attr, rms))
    if args.max_rms_force is not None and not rms <= args.max_rms_force:
        fail("the two free energies differ by %.3f kT RMS > %.3f" % (rms, args.max_rms_force))
    if args.truth:
        truth, attrs = dataset(args.truth)
        kT = float(attrs["temperature"])
        ncell = int(np.prod(n))
        frames = np.bincount(cell, minlength=ncell)
        tx = np.bincount(cell, weights=truth[:, 0], minlength=ncell) / np.maximum(frames, 1)
        ty = np.bincount(cell, weights=truth[:, 1], minlength=ncell) / np.maximum(frames, 1)
        v = (gen_three_well.potential(tx, ty) / kT).reshape(n)
        shift = np.sum(w * (v[well] - fh[well])) / w.sum()
        rms_truth = np.sqrt(np.mean((fh[well] + shift - v[well]) ** 2))
        print("histogram free energy against V/kT at the cells' mean true coordinates: RMS %.3f kT" % rms_truth)
        if not rms_truth <= args.max_rms_truth:
            fail("the histogram free energy differs from V/kT by %.3f kT RMS > %.3f" % (rms_truth, args.max_rms_truth))


def check_same(args):
    with h5py.File(args.results[0], "r") as r:
        ref = {k: r["fields"][k][()] for k in ("free_energy_force", "force", "diffusion", "count")}
    for path in args.results[1:]:
        with h5py.File(path, "r") as r:
            for k, a in ref.items():
                b = r["fields"][k][()]
                err = np.abs(a - b).max() / max(np.abs(a).max(), 1e-300)
                print("%s: %s relative difference %.2e" % (path, k, err))
                if not err <= args.tol:
                    fail("%s: /fields/%s differs from %s by %.2e > %.0e" % (path, k, args.results[0], err, args.tol))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("model")
    a.add_argument("results")
    a.add_argument("data")
    a.add_argument("--tol", type=float, default=1e-5)
    a = sub.add_parser("fields")
    a.add_argument("results")
    a.add_argument("--truth")
    a.add_argument("--max-rms-truth", type=float, default=0.5)
    a.add_argument("--max-rms-force", type=float)
    a = sub.add_parser("same")
    a.add_argument("results", nargs="+")
    a.add_argument("--tol", type=float, default=1e-8)
    args = p.parse_args()
    {"model": check_model, "fields": check_fields, "same": check_same}[args.what](args)
    print("ok")


if __name__ == "__main__":
    main()
