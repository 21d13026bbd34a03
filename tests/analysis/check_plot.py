#!/usr/bin/env python3
"""tools/plot.py on a results.h5 of the suite, and on small made-up ones for latent_dim 1 and 3.

usage: check_plot.py RESULTS.h5 DATA.h5:/truth
Every PNG must be written, open, have the size of its figure and not be blank; bad input (a
missing dataset, latent_dim 4, a truth shorter than the latent, a truth without the dataset) must
exit 2 with a message naming it. Exit 0 when every check holds, 1 otherwise."""
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402

PLOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "plot.py")


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def run(args, expect, message=None):
    p = subprocess.run([sys.executable, PLOT] + [str(a) for a in args], capture_output=True, text=True)
    if p.returncode != expect:
        sys.stdout.write(p.stdout + p.stderr)
        fail("plot.py %s: exit %d, expected %d" % (" ".join(map(str, args)), p.returncode, expect))
    if message is not None and message not in p.stderr:
        fail("plot.py %s: the message %r does not say %r" % (" ".join(map(str, args)), p.stderr.strip(), message))
    return p.stdout


def check_png(path, size):
    """Written, opens, has the figure's size in pixels, and is not blank (many colours, spread)."""
    if not os.path.isfile(path):
        fail("%s was not written" % path)
    img = mpimg.imread(path)
    if img.shape[:2] != size:
        fail("%s is %s pixels, expected %s" % (path, img.shape[:2], size))
    rgb = (img[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    colours = len(np.unique(rgb, axis=0))
    inked = np.mean(rgb.min(axis=1) < 200)  # pixels that are not white or light grey
    if colours < 50 or inked < 0.01:
        fail("%s looks blank: %d colours, %.1f%% of the pixels inked" % (path, colours, 100 * inked))
    print("%s: %dx%d pixels, %d colours, %.0f%% inked" % (os.path.basename(path), size[1], size[0], colours,
                                                          100 * inked))


def fake(path, d, n=12, frames=500):
    """A results.h5 with /latent, /history and /fields of latent_dim d (a quadratic well)."""
    rng = np.random.default_rng(d)
    z = rng.normal(size=(frames, d))
    axes = [np.linspace(-3, 3, n) for _ in range(d)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    F = 0.5 * (grid ** 2).sum(-1)
    with h5py.File(path, "w") as f:
        f["latent/traj0"] = z
        for k in ("epoch", "loss_rec_train", "loss_rec_test", "loss_sw_train", "loss_sw_test", "loss_prior_train",
                  "loss_prior_test", "vamp2_test"):
            f["history/" + k] = np.arange(5.0) if k == "epoch" else 1.0 / (1 + np.arange(5.0))
        for j, a in enumerate(axes):
            f["fields/axis%d" % j] = a
        f["fields/force"] = -grid
        f["fields/diffusion"] = np.ones(grid.shape)
        count = np.round(200 * np.exp(-F)).astype(np.int64)
        f["fields/count"] = count
        f["fields/free_energy_hist"] = np.where(count > 0, F, np.nan)
        f["fields/free_energy_force"] = F
        f["fields"].attrs["rms_difference_kT"] = 0.0


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    results, truth = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        # the suite's run, with the truth
        out = os.path.join(tmp, "figs")
        run([results, "--truth", truth, "--out", out], 0)
        check_png(os.path.join(out, "free_energy.png"), (648, 1320))
        check_png(os.path.join(out, "training.png"), (816, 1248))
        check_png(os.path.join(out, "latent_truth.png"), (516, 1224))
        # latent_dim 1 and 3, made up
        for d, size in ((1, (780, 840)), (3, (1944, 1320))):
            path = os.path.join(tmp, "d%d.h5" % d)
            fake(path, d)
            run([path, "--out", os.path.join(tmp, "d%d" % d)], 0)
            check_png(os.path.join(tmp, "d%d" % d, "free_energy.png"), size)
        # bad input: exit 2 naming the problem, nothing drawn
        broken = os.path.join(tmp, "broken.h5")
        shutil.copy(results, broken)
        with h5py.File(broken, "a") as f:
            del f["fields/free_energy_force"]
        run([broken, "--out", os.path.join(tmp, "bad")], 2, "no dataset /fields/free_energy_force")
        d4 = os.path.join(tmp, "d4.h5")
        with h5py.File(d4, "w") as f:
            f["latent/traj0"] = np.zeros((10, 4))
            f["history/epoch"] = np.arange(3.0)
        run([d4, "--out", os.path.join(tmp, "bad")], 2, "latent_dim 4")
        short = os.path.join(tmp, "short.h5")
        with h5py.File(short, "w") as f:
            f["truth"] = np.zeros((5, 2))
        run([results, "--truth", short + ":/truth", "--out", os.path.join(tmp, "bad")], 2, "fewer than the latent's")
        run([results, "--truth", short + ":/nothing", "--out", os.path.join(tmp, "bad")], 2, "no dataset /nothing")
        if os.path.exists(os.path.join(tmp, "bad")):
            fail("plot.py made its output folder on bad input")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
