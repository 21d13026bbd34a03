#!/usr/bin/env python3
"""A slow coordinate hidden under a fast one, for the warm-up targets (train.warmup_target).

gen OUT.h5: 6000 frames of /observed = (s, f, s/2 + f) (float32), where s is a slow
  Ornstein-Uhlenbeck process (correlation time 100 frames, variance 1) and f is white noise of
  variance 1; the truth s is stored as /slow. A one-dimensional autoencoder keeps f, which two of
  the three features carry; the leading TIC is s.
check RESULTS.h5 DATA.h5 (--min R | --max R): the R^2 of s from the latent (an affine fit) must be
  at least / at most R. Exit 0 when it holds, 1 otherwise."""
import sys

import h5py
import numpy as np


def gen(out):
    rng = np.random.default_rng(11)
    n, tau = 6000, 100.0
    a = np.exp(-1 / tau)
    s = np.empty(n)
    s[0] = rng.normal()
    for t in range(1, n):
        s[t] = a * s[t - 1] + np.sqrt(1 - a * a) * rng.normal()
    f = rng.normal(size=n)
    with h5py.File(out, "w") as h:
        h["observed"] = np.stack([s, f, 0.5 * s + f], 1).astype(np.float32)
        h["slow"] = s


def check(results, data, bound, at_least):
    with h5py.File(results, "r") as h:
        z = h["latent/traj0"][()].astype(np.float64)
    with h5py.File(data, "r") as h:
        s = h["slow"][()]
    A = np.c_[z, np.ones(len(z))]
    r = s - A @ np.linalg.lstsq(A, s, rcond=None)[0]
    r2 = 1 - (r @ r) / np.sum((s - s.mean()) ** 2)
    ok = r2 >= bound if at_least else r2 <= bound
    print(f"R^2 of the slow coordinate from the latent: {r2:.4f} ({'>=' if at_least else '<='} {bound}: "
          f"{'ok' if ok else 'FAIL'})")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2])
        sys.exit(0)
    sys.exit(check(sys.argv[2], sys.argv[3], float(sys.argv[5]), sys.argv[4] == "--min"))
