#!/usr/bin/python3
"""Tests of tools/evaluate.py on synthetic results files with known answers."""
import json
import math
import os
import sys

import h5py
import numpy as np

from tooltest import check, main, run


def rotation(angle):
    return np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])


def make_truth(tmp, frames=(3000,), scale_attr=None):
    """Truth files: three blobs like the three-well data, one dataset per trajectory."""
    rng = np.random.default_rng(1)
    path = os.path.join(tmp, "truth.h5")
    truths = []
    with h5py.File(path, "w") as f:
        for i, n in enumerate(frames):
            centres = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.5]])[rng.integers(0, 3, n)]
            truths.append(centres + 0.3 * rng.normal(size=(n, 2)))
            f[f"truth{i}"] = truths[-1]
        if scale_attr is not None:
            f.attrs["latent_scale_lag1"] = scale_attr
    return path, truths


def make_results(tmp, latents, name="results.h5", config=None):
    path = os.path.join(tmp, name)
    with h5py.File(path, "w") as f:
        for i, z in enumerate(latents):
            f[f"latent/traj{i}"] = z.astype(np.float32)
        if config is not None:
            f.attrs["config"] = config
    return path


def report(results, *truth, expect=0, extra=()):
    return json.loads(run("evaluate.py", results, *truth, "--json", *extra, expect=expect))


def test_isometry(tmp):
    tpath, (t0, t1) = make_truth(tmp, frames=(3000, 2000), scale_attr=14.0)
    lat = [12.5 * t @ rotation(1.1).T @ np.diag([1, -1]) + [4.0, -7.0] for t in (t0, t1)]
    res = make_results(tmp, lat, config='[data]\ninput = ["a.h5:/x", "b.h5:/x"]\nlag = 4\n')
    r = report(res, f"{tpath}:/truth0", f"{tpath}:truth1", extra=("--min-r2", 0.9999, "--max-sv-ratio", 1.0001))
    print(r)
    check(r["frames"] == 5000, "frames of both trajectories pooled")
    check(r["r2_worst"] > 1 - 1e-6, f"R^2 {r['r2_worst']} for an exact similarity")
    check(abs(r["sv_ratio"] - 1) < 1e-5, f"ratio {r['sv_ratio']} for an exact similarity")
    check(abs(r["distance_spread"] - 1) < 1e-5, f"distance spread {r['distance_spread']} for an exact similarity")
    check(abs(r["scale_latent_per_truth"] - 12.5) < 1e-4, f"scale {r['scale_latent_per_truth']} != 12.5")
    check(abs(r["expected_scale_latent_per_truth"] - 7.0) < 1e-12, "expected scale ignores the lag")
    check(r["failures"] == [], "failures reported")
    text = run("evaluate.py", res, f"{tpath}:/truth0", f"{tpath}:/truth1")
    check("R^2 truth from latent: 1.0000" in text and "ratio: 1.0000" in text, f"text report:\n{text}")


def test_warp(tmp):
    tpath, (t,) = make_truth(tmp)
    res = make_results(tmp, [np.c_[t[:, 0], t[:, 1] + 2 * t[:, 0] ** 2]])
    r = report(res, f"{tpath}:/truth0")
    print(r)
    check(r["r2_worst"] < 0.99, f"R^2 {r['r2_worst']} for a non-linear warp")
    check(r["distance_spread"] > 2, f"distance spread {r['distance_spread']} for a non-linear warp")
    report(res, f"{tpath}:/truth0", expect=1, extra=("--max-distance-spread", 2))
    r = report(res, f"{tpath}:/truth0", expect=1, extra=("--min-r2", 0.99))
    check(len(r["failures"]) == 1 and "R^2" in r["failures"][0], f"failures {r['failures']}")
    out = run("evaluate.py", res, f"{tpath}:/truth0", "--min-r2", 0.99, expect=1)
    check("FAIL" in out, "text report does not say FAIL")


def test_anisotropic(tmp):
    tpath, (t,) = make_truth(tmp)
    # latent = truth @ M with singular values 2 and 6: the fitted map from latent back to
    # truth has singular values 1/2 and 1/6, ratio 3.
    m = rotation(0.4) @ np.diag([2.0, 6.0]) @ rotation(-1.3)
    res = make_results(tmp, [t @ m])
    r = report(res, f"{tpath}:/truth0")
    print(r)
    check(abs(r["sv_ratio"] - 3) < 1e-4, f"ratio {r['sv_ratio']} != 3")
    check(np.allclose(sorted(r["singular_values"]), [1 / 6, 1 / 2], rtol=1e-4), "singular values")
    check(abs(r["scale_latent_per_truth"] - math.sqrt(12)) < 1e-3, "scale is not the geometric mean")
    check(r["r2_worst"] > 1 - 1e-6, "R^2 of an exact linear map")
    # distances stretched by factors between 2 and 6 depending on direction
    check(1.5 < r["distance_spread"] <= 3 + 1e-9, f"distance spread {r['distance_spread']} for singular values 2, 6")
    report(res, f"{tpath}:/truth0", expect=1, extra=("--max-sv-ratio", 2.9))
    report(res, f"{tpath}:/truth0", expect=0, extra=("--max-sv-ratio", 3.1))


def test_bad_input(tmp):
    tpath, (t,) = make_truth(tmp)
    good = make_results(tmp, [t])
    short = make_results(tmp, [t[:-1]], name="short.h5")
    nan = make_results(tmp, [np.where(np.arange(len(t))[:, None] == 5, np.nan, t)], name="nan.h5")
    gap = os.path.join(tmp, "gap.h5")
    with h5py.File(gap, "w") as f:
        f["latent/traj0"] = t
        f["latent/traj2"] = t
    cases = [
        (short, f"{tpath}:/truth0"),           # frame counts differ
        (good, f"{tpath}:/truth0", f"{tpath}:/truth0"),  # two truths, one trajectory
        (good, f"{tpath}:/missing"),
        (good, tpath),                          # no dataset part
        (os.path.join(tmp, "none.h5"), f"{tpath}:/truth0"),
        (tpath, f"{tpath}:/truth0"),            # no /latent group
        (nan, f"{tpath}:/truth0"),
        (gap, f"{tpath}:/truth0", f"{tpath}:/truth0"),
        (good, f"{tpath}:/truth0", "--max-sv-ratio", 0.5),
        (good, f"{tpath}:/truth0", "--max-distance-spread", 0.9),
    ]
    for args in cases:
        run("evaluate.py", *args, expect=2)


if __name__ == "__main__":
    main({"isometry": test_isometry, "warp": test_warp, "anisotropic": test_anisotropic,
          "bad_input": test_bad_input}, sys.argv)
