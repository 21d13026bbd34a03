#!/usr/bin/env python3
"""Checks the layout and contents of a results.h5 written by dynae-mpi (SPEC section 8).

usage: check_results.py RESULTS.h5 DATA.h5:/dataset RANKS EPOCHS SEED
Exit 0 when everything holds, 1 with a list of the problems otherwise."""
import os
import sys

import h5py
import numpy as np

HISTORY = ["epoch", "loss_rec_train", "loss_sw_train", "loss_prior_train", "loss_rec_test", "loss_sw_test",
           "loss_prior_test", "bins", "seconds"]


def main():
    path, data, ranks, epochs, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    dfile, dset = data.rsplit(":", 1)
    with h5py.File(dfile, "r") as f:
        x = f[dset][()]
    frames, D = x.shape
    bad = []

    def need(cond, what):
        if not cond:
            bad.append(what)

    need(not os.path.exists(path + ".tmp"), "the temporary file was left behind")
    with h5py.File(path, "r") as f:
        z = f["latent/traj0"][()]
        need(z.shape[0] == frames and z.ndim == 2, f"latent shape {z.shape}, expected ({frames}, d)")
        d = z.shape[1]
        need(np.all(np.isfinite(z)), "latent not finite")
        # Rows nobody wrote keep HDF5's fill value 0: every frame must have been encoded.
        need(not np.any(np.all(z == 0, axis=1)), "latent rows left unwritten")
        need(np.std(z, axis=0).min() > 0, "latent is constant")
        y = f["reconstruction/traj0"][()]
        need(y.shape == (frames, D), f"reconstruction shape {y.shape}, expected {(frames, D)}")
        need(np.all(np.isfinite(y)), "reconstruction not finite")
        mse, var = np.mean(np.sum((y - x) ** 2, axis=1)), np.sum(np.var(x, axis=0))
        need(mse < var, f"reconstruction error {mse:.3g} not below the data's variance {var:.3g}")
        c, n = f["clusters/centers"][()], f["clusters/counts"][()]
        K = len(n)
        need(c.shape == (K, d), f"centers shape {c.shape}, counts {n.shape}")
        need(K >= 1 and np.all(n >= 1), f"bins: {n}")
        ntrain = int(n.sum())
        need(0.7 * (frames - 1) < ntrain < 0.9 * (frames - 1), f"bins hold {ntrain} pairs of {frames - 1}")
        h = {k: f["history/" + k][()] for k in HISTORY}
        for k, v in h.items():
            need(v.shape == (epochs,), f"history/{k} shape {v.shape}, expected ({epochs},)")
            need(np.all(np.isfinite(v)), f"history/{k} not finite")
        need(np.array_equal(h["epoch"], np.arange(epochs)), f"history/epoch {h['epoch']}")
        need(h["bins"][0] == 0 and h["bins"][-1] == K, f"history/bins {h['bins']} (last clustering: {K})")
        need(np.all(h["seconds"] > 0), "history/seconds")
        a = f.attrs
        config = a["config"]
        config = config.decode() if isinstance(config, bytes) else str(config)
        need("[train]" in config and "epochs" in config, "attribute config")
        need(len(str(a["version"])) > 0, "attribute version")
        need(int(a["ranks"]) == ranks, f"attribute ranks {a['ranks']}, expected {ranks}")
        need(int(a["seed"]) == seed, f"attribute seed {a['seed']}, expected {seed}")
    for b in bad:
        print("FAIL:", b)
    print(f"{path}: {'ok' if not bad else 'BAD'} (frames {frames}, d {d}, bins {K})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
