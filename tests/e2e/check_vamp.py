#!/usr/bin/env python3
"""The per-epoch VAMP-2 of a run: /history/vamp2_test must be finite, within [1, 1 + d], and end
higher than after the warm-up epoch (the latent learns slow coordinates as it trains).

usage: check_vamp.py RESULTS.h5     exit 0 when it holds, 1 otherwise."""
import sys

import h5py
import numpy as np


def main():
    with h5py.File(sys.argv[1], "r") as f:
        v = f["history/vamp2_test"][()]
        d = f["latent/traj0"].shape[1]
    print("vamp2_test:", " ".join(f"{x:.4f}" for x in v))
    bad = []
    if not np.all(np.isfinite(v)) or v.min() < 1 - 1e-6 or v.max() > 1 + d + 1e-6:
        bad.append(f"values outside [1, {1 + d}]")
    if not v[-1] > v[0] + 0.01:
        bad.append(f"last value {v[-1]:.4f} not above the first {v[0]:.4f}")
    for b in bad:
        print("FAIL:", b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
