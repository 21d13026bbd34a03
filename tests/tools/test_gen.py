#!/usr/bin/python3
"""Tests of tools/gen_three_well.py: reproducibility, the wells visited, the warp, arguments."""
import os
import sys

import h5py
import numpy as np

from tooltest import check, main, run


def datasets(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ("observed", "truth")}, dict(f.attrs)


def test_reproducible(tmp):
    paths = [os.path.join(tmp, n) for n in ("a.h5", "b.h5", "c.h5")]
    for path, seed in zip(paths, (5, 5, 6)):
        run("gen_three_well.py", "--frames", 3000, "--seed", seed, "--out", path, "--quiet")
    (a, attrs), (b, _), (c, _) = map(datasets, paths)
    for k in a:
        check(a[k].tobytes() == b[k].tobytes(), f"/{k}: same seed, different bytes")
        check(a[k].tobytes() != c[k].tobytes(), f"/{k}: different seeds, same bytes")
    with open(paths[0], "rb") as f0, open(paths[1], "rb") as f1:
        check(f0.read() == f1.read(), "same seed, different file bytes")
    for key, want in (("seed", 5), ("dt", 0.002), ("stride", 4), ("temperature", 0.6), ("frames", 3000)):
        check(key in attrs and attrs[key] == want, f"attribute {key}: {attrs.get(key)} != {want}")
    check("potential" in attrs and "warp" in attrs, "potential/warp attributes missing")


def potential_gradient(p):
    """Central differences of the three-hole potential, written independently of the tool."""
    def v(x, y):
        return (3 * np.exp(-x**2 - (y - 1 / 3)**2) - 3 * np.exp(-x**2 - (y - 5 / 3)**2)
                - 5 * np.exp(-(x - 1)**2 - y**2) - 5 * np.exp(-(x + 1)**2 - y**2)
                + 0.2 * x**4 + 0.2 * (y - 1 / 3)**4)
    h = 1e-6
    x, y = p[..., 0], p[..., 1]
    return np.stack([(v(x + h, y) - v(x - h, y)) / (2 * h), (v(x, y + h) - v(x, y - h)) / (2 * h)], axis=-1)


def test_wells(tmp):
    path = os.path.join(tmp, "w.h5")
    run("gen_three_well.py", "--frames", 40000, "--seed", 1, "--out", path, "--quiet")
    (d, _) = datasets(path)
    t = d["truth"]
    # The three minima by gradient descent from rough guesses.
    m = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.6]])
    for _ in range(5000):
        m -= 0.01 * potential_gradient(m)
    check(np.allclose(m, [[-1.048, -0.042], [1.048, -0.042], [0.0, 1.537]], atol=2e-3), f"minima {m}")
    dist = np.linalg.norm(t[:, None, :] - m[None], axis=2)
    core = dist.argmin(axis=1)[dist.min(axis=1) < 0.5]
    entries = np.bincount(core[np.r_[0, np.flatnonzero(np.diff(core)) + 1]], minlength=3)
    print("entries per well:", entries)
    check(entries.min() >= 3, f"not every well visited at least 3 times: {entries}")


def test_dynamics(tmp):
    """With one step per frame, every move minus the Euler drift is the noise: N(0, 2 kT dt)."""
    path = os.path.join(tmp, "s.h5")
    kT, dt = 0.5, 0.003
    run("gen_three_well.py", "--frames", 100000, "--seed", 4, "--stride", 1, "--dt", dt,
        "--temperature", kT, "--out", path, "--quiet")
    t = datasets(path)[0]["truth"]
    move = t[1:] - t[:-1]
    drift = -potential_gradient(t[:-1]) * dt
    noise = move - drift
    # The drift is small next to the noise; a least-squares fit of move = c * drift checks it.
    c = np.sum(move * drift) / np.sum(drift * drift)
    se = np.sqrt(2 * kT * dt / np.sum(drift * drift))
    print("drift coefficient", c, "standard error", se)
    check(abs(c - 1) < 4 * se and se < 0.03, f"moves do not follow -grad V dt (coefficient {c})")
    var = np.var(noise, axis=0)
    corr = np.corrcoef(noise.T)[0, 1]
    lag1 = np.mean(noise[1:] * noise[:-1]) / np.mean(noise * noise)
    print("noise variance", var, "expected", 2 * kT * dt, "x-y correlation", corr, "lag-1", lag1)
    check(np.allclose(var, 2 * kT * dt, rtol=0.03), "noise variance is not 2 kT dt")
    check(abs(corr) < 0.03 and abs(lag1) < 0.03, "noise is correlated")


def test_warp(tmp):
    path = os.path.join(tmp, "w.h5")
    run("gen_three_well.py", "--frames", 2000, "--seed", 2, "--out", path, "--quiet")
    (d, _) = datasets(path)
    o, t = d["observed"], d["truth"]
    check(o.dtype == np.float32 and o.shape == (2000, 2), f"/observed is {o.dtype} {o.shape}")
    check(t.dtype == np.float64 and t.shape == (2000, 2), f"/truth is {t.dtype} {t.shape}")
    check(np.array_equal(o[:, 0], t[:, 0].astype(np.float32)), "x' != x")
    check(np.array_equal(o[:, 1], (t[:, 1] + t[:, 0] ** 2).astype(np.float32)), "y' != y + x^2")


def test_args(tmp):
    out = os.path.join(tmp, "x.h5")
    for bad in (["--frames", 1], ["--dt", -1], ["--stride", 0], ["--temperature", 0], ["--seed", -3],
                ["--dt", "nan"], ["--frames", "many"]):
        run("gen_three_well.py", *bad, "--out", out, expect=2)
    run("gen_three_well.py", "--frames", 10, "--out", os.path.join(tmp, "no", "x.h5"), expect=2)
    check(not os.path.exists(out), "a file was written despite bad arguments")


if __name__ == "__main__":
    main({"reproducible": test_reproducible, "wells": test_wells, "dynamics": test_dynamics, "warp": test_warp, "args": test_args},
         sys.argv)
