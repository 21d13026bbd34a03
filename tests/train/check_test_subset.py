#!/usr/bin/env python3
"""train.test_pairs: a fixed random subset of the test pairs in every epoch but the last.

usage: check_test_subset.py WORKDIR -- MPIEXEC NPFLAG [FLAGS...] PROGRAM INPUT
Runs 3 epochs with test_pairs = 300 at 1 and 2 ranks and with all test pairs (test_pairs = 0) at
2 ranks, and checks that the subset is the same at both rank counts and about 300 pairs, that
training does not depend on it (train losses, latent and weights bitwise equal), that the last
epoch's test losses and VAMP-2 are those of the whole set (bitwise), and that the earlier
epochs' are not. Exit 0 when all holds, 1 otherwise."""
import os
import re
import subprocess
import sys

import h5py
import numpy as np

TEST_COLUMNS = ["loss_rec_test", "loss_sw_test", "loss_prior_test", "vamp2_test"]


def main():
    argv = sys.argv[1:]
    cut = argv.index("--")
    work, (mpiexec, npflag, *rest) = argv[0], argv[cut + 1:]
    flags, program, toml = rest[:-2], rest[-2], rest[-1]
    bad = []

    def run(ranks, pairs, name):
        out = os.path.join(work, name)
        cmd = [mpiexec, npflag, str(ranks), *flags, program, toml, "--set", "train.epochs=3", "--set",
               f"train.test_pairs={pairs}", "--set", f"output.dir={out}"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            bad.append(f"{name}: exit {p.returncode}\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
            return None, None
        with h5py.File(os.path.join(out, "results.h5"), "r") as f:
            res = {k: f[k][()] for k in ("latent/traj0", "model/encoder/W0")}
            res.update({k: f["history/" + k][()] for k in f["history"]})
        m = re.search(r"^# test losses and VAMP-2: (\d+) of the (\d+) test pairs", p.stdout, re.M)
        return res, (int(m.group(1)), int(m.group(2))) if m else None

    r1, line1 = run(1, 300, "subset_r1")
    r2, line2 = run(2, 300, "subset_r2")
    ra, linea = run(2, 0, "subset_all")
    if bad:
        print("\n".join("FAIL: " + b for b in bad))
        return 1
    if line1 is None or line1 != line2:
        bad.append(f"the subset is not named alike at 1 and 2 ranks: {line1} vs {line2}")
    else:
        n, total = line1
        # stretches of 32 / 0.2 = 160 pair ids, some 32 test pairs each: a few stretches of ~37
        if not 32 <= n <= 900:
            bad.append(f"{n} of {total} test pairs chosen, expected about 300")
    if linea is not None:
        bad.append("with train.test_pairs = 0 the log names a subset")
    for k in ("latent/traj0", "model/encoder/W0", "loss_rec_train", "loss_sw_train", "loss_prior_train"):
        if not np.array_equal(r2[k], ra[k]):
            bad.append(f"{k} depends on train.test_pairs")
    for k in TEST_COLUMNS:
        if r2[k][-1] != ra[k][-1]:
            bad.append(f"{k}: the last epoch is not evaluated on the whole test set ({r2[k][-1]} vs {ra[k][-1]})")
        if np.array_equal(r2[k][:-1], ra[k][:-1]):
            bad.append(f"{k}: the epochs before the last are the whole set's too")
        if not np.all(np.isfinite(r2[k])):
            bad.append(f"{k}: not finite {r2[k]}")
    for b in bad:
        print("FAIL:", b)
    if not bad:
        print(f"subset of {line1[0]} of {line1[1]} test pairs at 1 and 2 ranks; last epoch on all of them")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
