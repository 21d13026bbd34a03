#!/usr/bin/python3
"""A fluorescence-like movie for dynae-mpi's convolutional networks: one blurred, deformable blob
diffusing on 64 x 64 frames, imaged with photon (Poisson) noise and a slowly drifting brightness.

The blob is an elliptical Gaussian of widths a and b (pixels) rotated by angle phi. Its centre
(x, y) walks with Gaussian steps of --step pixels per frame, reflected at [--margin, 64 -
--margin]. Its shape relaxes slowly around a mean (Ornstein-Uhlenbeck processes with correlation
time --shape-tau frames): log(a / b), the elongation, around 0.4 with spread 0.25, and phi as a
free angular diffusion. The brightness (expected photons at the blob's peak) drifts as
--photons * (1 + --drift sin(2 pi t / --drift-period) ) times a slow log-normal random walk, and a
uniform background of --background photons per pixel is added. Each pixel then counts
Poisson(expected) photons; the frame stored is counts / --photons (about 1 at the peak).

Output: one HDF5 file with
  /observed  (frames, 64, 64) float32   the frames (read with model.network = "conv")
  /truth     (frames, 2) float64        the centre x, y in pixels (the slow, diffusive coordinates)
  /nuisance  (frames, 4) float64        elongation log(a/b), angle phi, mean width sqrt(a b), brightness
and root attributes holding every parameter. Same arguments and numpy version give identical
datasets. A constant-diffusion latent space should recover /truth up to an isometry (scale
1 / --step per pixel at lag 1) and be insensitive to /nuisance.
"""
import argparse
import sys

import numpy as np

try:
    import h5py
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.exit("gen_fluorescence.py: h5py is missing; run it with /usr/bin/python3 (Debian's python3-h5py)")

from gen_sprites import reflect  # reflecting walls, shared with the sprite generator

SIDE = 64
VERSION = 1


def fail(msg):
    print(f"gen_fluorescence.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def main(argv=None):
    p = argparse.ArgumentParser(description="a diffusing, deforming fluorescent blob on 64 x 64 frames")
    p.add_argument("--out", required=True)
    p.add_argument("--frames", type=int, default=10000)
    p.add_argument("--step", type=float, default=1.5, help="rms step of x and y per frame, pixels")
    p.add_argument("--margin", type=float, default=12.0, help="walls at margin and 64 - margin, pixels")
    p.add_argument("--width", type=float, default=4.0, help="mean blob width sqrt(a b), pixels")
    p.add_argument("--shape-tau", type=float, default=200.0, help="correlation time of the shape, frames")
    p.add_argument("--photons", type=float, default=60.0, help="mean photons at the blob's peak")
    p.add_argument("--background", type=float, default=3.0, help="background photons per pixel")
    p.add_argument("--drift", type=float, default=0.3, help="relative amplitude of the periodic brightness drift")
    p.add_argument("--drift-period", type=float, default=5000.0, help="frames")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.frames < 2:
        fail("--frames must be at least 2")
    if not 0 < a.margin < SIDE / 2 or a.step <= 0 or a.width <= 0 or a.shape_tau <= 0:
        fail("--margin must lie in (0, 32); --step, --width and --shape-tau must be positive")
    if a.photons <= 0 or a.background < 0 or not 0 <= a.drift < 1 or a.drift_period <= 0:
        fail("--photons must be positive, --background non-negative, --drift in [0, 1), --drift-period positive")
    rng = np.random.default_rng(a.seed)
    n, lo, hi = a.frames, a.margin, SIDE - a.margin
    x, y = np.empty(n), np.empty(n)
    elong, phi, logw, logb = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    cx, cy = rng.uniform(lo, hi, 2)
    e, f, w, b = 0.4, rng.uniform(0, np.pi), 0.0, 0.0
    k = 1.0 / a.shape_tau
    noise = rng.standard_normal((n, 6))
    for t in range(n):
        x[t], y[t], elong[t], phi[t], logw[t], logb[t] = cx, cy, e, f, w, b
        cx = float(reflect(cx + a.step * noise[t, 0], lo, hi))
        cy = float(reflect(cy + a.step * noise[t, 1], lo, hi))
        e += -k * (e - 0.4) + 0.25 * np.sqrt(2 * k) * noise[t, 2]
        f += 0.5 * np.sqrt(2 * k) * noise[t, 3]
        w += -k * w + 0.1 * np.sqrt(2 * k) * noise[t, 4]
        b += -0.1 * k * b + 0.05 * np.sqrt(2 * k) * noise[t, 5]  # slow brightness walk (log scale)
    width = a.width * np.exp(logw)
    A, B = width * np.exp(elong / 2), width * np.exp(-elong / 2)
    bright = a.photons * (1 + a.drift * np.sin(2 * np.pi * np.arange(n) / a.drift_period)) * np.exp(logb)
    cols = np.arange(SIDE) + 0.5
    with h5py.File(a.out, "w") as h:
        obs = h.create_dataset("observed", (n, SIDE, SIDE), np.float32, chunks=(min(256, n), SIDE, SIDE))
        for i in range(0, n, 1000):
            j = min(n, i + 1000)
            dx = cols[None, None, :] - x[i:j, None, None]
            dy = cols[None, :, None] - y[i:j, None, None]
            c, s = np.cos(phi[i:j])[:, None, None], np.sin(phi[i:j])[:, None, None]
            u, v = c * dx + s * dy, -s * dx + c * dy
            img = np.exp(-0.5 * ((u / A[i:j, None, None]) ** 2 + (v / B[i:j, None, None]) ** 2))
            lam = bright[i:j, None, None] * img + a.background
            obs[i:j] = (rng.poisson(lam) / a.photons).astype(np.float32)
        h["truth"] = np.stack([x, y], axis=1)
        h["nuisance"] = np.stack([elong, phi, width, bright], axis=1)
        h.attrs["generator"] = "gen_fluorescence.py"
        h.attrs["version"] = VERSION
        for key, val in vars(a).items():
            if key != "out":
                h.attrs[key] = val
        h.attrs["truth_columns"] = "x y"
        h.attrs["nuisance_columns"] = "elongation angle width brightness"
    print(f"gen_fluorescence.py: {n} frames of a diffusing blob -> {a.out}; truth /truth (x, y), "
          f"expected latent scale ~ 1/{a.step:g} per pixel at lag 1")


if __name__ == "__main__":
    main()
