#!/usr/bin/env python3
"""Compares two results.h5 files dataset by dataset, bitwise (the timing history excepted).

usage: compare_results.py A.h5 B.h5 [--expect-different]
Exit 0 when every dataset is identical (with --expect-different: when the latent differs),
1 otherwise."""
import sys

import h5py
import numpy as np

SKIP = {"history/seconds"}


def datasets(f):
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    expect_different = "--expect-different" in sys.argv
    with h5py.File(args[0], "r") as fa, h5py.File(args[1], "r") as fb:
        a, b = datasets(fa), datasets(fb)
    if sorted(a) != sorted(b):
        print(f"different datasets: {sorted(set(a) ^ set(b))}")
        return 1
    differ = []
    for name in sorted(a):
        if name in SKIP:
            continue
        x, y = a[name], b[name]
        same = x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        if not same:
            differ.append(name)
    print(f"{len(a) - len(SKIP)} datasets compared, {len(differ)} differ: {differ}")
    latent_differs = any(n.startswith("latent/") for n in differ)
    if expect_different:
        return 0 if latent_differs else 1
    if differ:
        for name in differ[:3]:
            x, y = np.asarray(a[name], dtype=float), np.asarray(b[name], dtype=float)
            if x.shape == y.shape:
                print(f"  {name}: max |difference| {np.max(np.abs(x - y)):.3e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
