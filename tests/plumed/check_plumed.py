#!/usr/bin/env python3
"""tools/export_plumed.py against the latent, through the evaluator of plumed_eval.py.

usage:
  check_plumed.py trained RESULTS.h5 DATA.h5:/DATASET --route CUSTOM|ANN --tmp DIR
      the PLUMED input of a trained run, evaluated on its training features, against /latent/traj0;
      then the same file with a made-up input standardisation, against numpy's encoder
  check_plumed.py distances --tmp DIR
      made-up encoders (ReLU and tanh) on the distances of selected atoms, against numpy
Tolerance: 1e-5 of the largest latent coordinate. Exit 0 when all holds, 1 otherwise."""
import argparse
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "analysis"))
import check_fields  # noqa: E402  (numpy's encoder of /model/)
import plumed_eval  # noqa: E402

EXPORT = os.path.join(HERE, "..", "..", "tools", "export_plumed.py")
TOL = 1e-5


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def export(results, out, arg=None):
    cmd = [sys.executable, EXPORT, results, "--out", out, "--json"] + (["--arg", arg] if arg else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        fail("export_plumed.py exited %d: %s" % (p.returncode, p.stderr.strip()))
    with open(out) as f:
        return json.loads(p.stdout), f.read()


def encode(path, x):
    with h5py.File(path, "r") as r:
        return check_fields.encode(r["model"], x)


def compare(what, vals, want):
    got = np.stack([vals["cv_%d" % k] for k in range(want.shape[1])], axis=1)
    err = np.abs(got - want).max() / np.abs(want).max()
    print("%s: max difference %.2e of the largest latent coordinate" % (what, err))
    if not err <= TOL:
        fail("%s differs by %.2e > %.0e" % (what, err, TOL))


def trained(args):
    path, name = args.data.rsplit(":", 1)
    with h5py.File(path, "r") as f:
        x = f[name][()].astype(np.float64)
    with h5py.File(args.results, "r") as r:
        latent = r["latent/traj0"][()].astype(np.float64)
    names = ",".join("feat%d" % k for k in range(x.shape[1]))
    inputs = {"feat%d" % k: x[:, k] for k in range(x.shape[1])}
    summary, text = export(args.results, os.path.join(args.tmp, "plumed.dat"), names)
    if summary["route"] != args.route:
        fail("the export took the %s route, expected %s" % (summary["route"], args.route))
    compare("%s route on the training features against /latent" % args.route, plumed_eval.evaluate(text, inputs),
            latent)
    # a standardisation of the inputs must be folded in exactly
    copy = os.path.join(args.tmp, "standardised.h5")
    shutil.copyfile(args.results, copy)
    rng = np.random.default_rng(1)
    with h5py.File(copy, "r+") as r:
        r["model/input_mean"][...] = rng.normal(size=x.shape[1])
        r["model/input_scale"][...] = rng.uniform(0.5, 2.0, size=x.shape[1])
    _, text = export(copy, os.path.join(args.tmp, "plumed_std.dat"), names)
    compare("%s route with a standardisation against numpy" % args.route, plumed_eval.evaluate(text, inputs),
            encode(copy, x))


def distances(args):
    rng = np.random.default_rng(2)
    atoms = [0, 2, 3, 6]  # 0-based, as in /model's atoms attribute
    pos = rng.normal(size=(500, 8, 3)) * 3
    pairs = [(a, b) for i, a in enumerate(atoms) for b in atoms[i + 1:]]
    feats = np.stack([np.linalg.norm(pos[:, a] - pos[:, b], axis=1) for a, b in pairs], axis=1)
    D = feats.shape[1]
    for act, route in (("relu", "CUSTOM"), ("tanh", "ANN")):
        path = os.path.join(args.tmp, "distances_%s.h5" % act)
        widths = [D, 7, 5, 2]
        with h5py.File(path, "w") as f:
            m = f.create_group("model")
            m.attrs["features"] = "distances"
            m.attrs["atoms"] = np.array(atoms, np.int32)
            m["input_mean"] = feats.mean(0)
            m["input_scale"] = feats.std(0)
            enc = m.create_group("encoder")
            enc.attrs["activation"] = act
            enc.attrs["layers"] = len(widths) - 1
            for i in range(len(widths) - 1):
                enc["W%d" % i] = rng.normal(size=(widths[i + 1], widths[i])) / np.sqrt(widths[i])
                enc["b%d" % i] = rng.normal(size=widths[i + 1]) * 0.1
        summary, text = export(path, os.path.join(args.tmp, "distances_%s.dat" % act))
        if summary["route"] != route or summary["inputs"][0] != "dist_1_3":
            fail("distances (%s): route %s, inputs %s" % (act, summary["route"], summary["inputs"][:3]))
        compare("%s route on distances of atoms %s against numpy" % (route, atoms),
                plumed_eval.evaluate(text, positions=pos), encode(path, feats))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("trained")
    a.add_argument("results")
    a.add_argument("data")
    a.add_argument("--route", choices=("CUSTOM", "ANN"), required=True)
    a.add_argument("--tmp", required=True)
    a = sub.add_parser("distances")
    a.add_argument("--tmp", required=True)
    args = p.parse_args()
    os.makedirs(args.tmp, exist_ok=True)
    trained(args) if args.what == "trained" else distances(args)
    print("ok")


if __name__ == "__main__":
    main()
