#!/usr/bin/python3
"""Tests of tools/npy_to_h5.py: round trips of 2-D and 3-D arrays, precisions, bad inputs."""
import os
import sys

import h5py
import numpy as np

from tooltest import check, main, run


def test_roundtrip(tmp):
    rng = np.random.default_rng(0)
    a2 = rng.normal(size=(500, 7))                      # float64, 2-D
    a3 = rng.normal(size=(300, 4, 3)).astype(np.float32)  # (frames, atoms, 3)
    ai = rng.integers(-50, 50, size=(20, 3))            # integers are accepted
    paths = [os.path.join(tmp, n) for n in ("a2.npy", "a3.npy", "ai.npy")]
    for p, a in zip(paths, (a2, a3, ai)):
        np.save(p, a)
    out32 = os.path.join(tmp, "t32.h5")
    text = run("npy_to_h5.py", *paths, "--out", out32, "--toml-dir", tmp)
    check('input = ["t32.h5:/traj0", "t32.h5:/traj1", "t32.h5:/traj2"]' in text, f"input line:\n{text}")
    check("flattened" in text, "the 3-D flattening is not reported")
    with h5py.File(out32, "r") as f:
        check(f["traj0"].dtype == np.float32 and f["traj0"].shape == (500, 7), "traj0 dtype/shape")
        check(np.array_equal(f["traj0"][()], a2.astype(np.float32)), "traj0 values")
        check(f["traj1"].shape == (300, 12), f"traj1 shape {f['traj1'].shape}")
        check(np.array_equal(f["traj1"][()], a3.reshape(300, 12)), "traj1 is not the row-major flattening")
        check(np.array_equal(f["traj2"][()], ai.astype(np.float32)), "traj2 values")
    out64 = os.path.join(tmp, "t64.h5")
    run("npy_to_h5.py", paths[0], paths[1], "--float64", "--names", "pos,/other", "--out", out64)
    with h5py.File(out64, "r") as f:
        check(f["pos"].dtype == np.float64 and np.array_equal(f["pos"][()], a2), "float64 round trip")
        check(np.array_equal(f["other"][()], a3.reshape(300, 12).astype(np.float64)), "named 3-D dataset")
    run("npy_to_h5.py", paths[0], "--out", out64, expect=2)           # exists, no --force
    run("npy_to_h5.py", paths[0], "--out", out64, "--force")
    with h5py.File(out64, "r") as f:
        check(list(f) == ["traj0"], "--force did not replace the file")


def test_bad_input(tmp):
    bad = {
        "nan.npy": np.array([[1.0, 2.0], [np.nan, 0.0], [1.0, 1.0]]),
        "inf.npy": np.array([[1.0, np.inf], [0.0, 0.0]]),
        "overflow.npy": np.full((3, 2), 1e300),
        "one_d.npy": np.zeros(10),
        "four_d.npy": np.zeros((4, 2, 2, 3)),
        "one_frame.npy": np.zeros((1, 3)),
        "no_features.npy": np.zeros((5, 0)),
        "complex.npy": np.zeros((4, 2), dtype=complex),
        "strings.npy": np.array([["a", "b"], ["c", "d"]]),
    }
    good = os.path.join(tmp, "good.npy")
    np.save(good, np.zeros((4, 2)))
    out = os.path.join(tmp, "out.h5")
    for name, a in bad.items():
        path = os.path.join(tmp, name)
        np.save(path, a)
        run("npy_to_h5.py", good, path, "--out", out, expect=2)
        check(not os.path.exists(out) and not os.path.exists(out + ".tmp"), f"{name}: output left behind")
    text_file = os.path.join(tmp, "text.npy")
    with open(text_file, "w") as f:
        f.write("not an array\n")
    for args in ([text_file], [os.path.join(tmp, "missing.npy")], [good, "--names", "a,b"],
                 [good, good, "--names", "a,a"], [good, "--names", "a b"]):
        run("npy_to_h5.py", *args, "--out", out, expect=2)
    run("npy_to_h5.py", good, "--out", os.path.join(tmp, "no", "out.h5"), expect=2)


if __name__ == "__main__":
    main({"roundtrip": test_roundtrip, "bad_input": test_bad_input}, sys.argv)
