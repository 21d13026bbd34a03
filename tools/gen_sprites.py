#!/usr/bin/python3
"""Image data for dynae-mpi's convolutional networks: a sprite doing a Brownian walk on 64 x 64
frames, in (x, y) or in (x, y, scale).

The sprite is a shape drawn here procedurally (heart, square or ellipse, --shape), antialiased by
averaging --supersample^2 sub-pixel samples of its indicator. Its centre (x, y), in pixels, walks
with independent Gaussian steps of standard deviation --step per frame, reflected at the walls
[--margin, 64 - --margin]; with --mode xys its scale walks too (steps --scale-step, reflected in
[--scale-min, --scale-max]), otherwise it stays 1. The sprite's size at scale 1 is --size pixels
across. Pixels are white (1) on black (0), plus optional Gaussian read noise (--noise).

Output: one HDF5 file with
  /observed  (frames, 64, 64) float32   the frames (what dynae-mpi reads with model.network = "conv")
  /truth     (frames, 2 or 3) float64   x, y (pixels) and, with --mode xys, the scale
and root attributes holding every parameter. Same arguments and numpy version give identical
datasets.

A constant-diffusion latent space of the x-y walk should be (x, y) up to an isometry, scaled so
that one move has unit diffusion: latent ~ truth / (step sqrt(lag)) away from the walls.
"""
import argparse
import sys

import numpy as np

try:
    import h5py
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.exit("gen_sprites.py: h5py is missing; run it with /usr/bin/python3 (Debian's python3-h5py)")

SIDE = 64
VERSION = 1


def fail(msg):
    print(f"gen_sprites.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def inside(shape, u, v):
    """Indicator of the unit shape at offsets (u, v) from its centre, in units of half its size
    (v points down the image)."""
    if shape == "square":
        return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    if shape == "ellipse":
        return (u / 1.0) ** 2 + (v / 0.6) ** 2 <= 1.0
    # heart: (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0, y up, scaled to about [-1, 1]
    x, y = u * 1.15, -v * 1.15 + 0.15
    return (x * x + y * y - 1) ** 3 - x * x * y ** 3 <= 0


def reflect(p, lo, hi):
    """Folds values back into [lo, hi] (reflecting walls)."""
    w = hi - lo
    q = np.mod(p - lo, 2 * w)
    return lo + np.where(q > w, 2 * w - q, q)


def walk(rng, n, start, sigma, lo, hi):
    """A reflected Gaussian random walk of n steps from start (per-step reflection)."""
    out = np.empty(n)
    x = start
    steps = rng.standard_normal(n) * sigma
    for i in range(n):
        out[i] = x
        x = float(reflect(x + steps[i], lo, hi))
    return out


def render(shape, x, y, s, size, ss):
    """Frames (n, 64, 64) of the shape centred at (x, y) pixels with scale s, antialiased."""
    n = len(x)
    frames = np.zeros((n, SIDE, SIDE), np.float64)
    offs = (np.arange(ss) + 0.5) / ss
    cols = np.arange(SIDE)
    half = 0.5 * size
    for a in offs:
        for b in offs:
            # pixel (row r, column c) covers [c, c + 1) x [r, r + 1); sample at (c + a, r + b)
            u = ((cols[None, None, :] + a) - x[:, None, None]) / (half * s[:, None, None])
            v = ((cols[None, :, None] + b) - y[:, None, None]) / (half * s[:, None, None])
            frames += inside(shape, u, v)
    return frames / (ss * ss)


def main(argv=None):
    p = argparse.ArgumentParser(description="Brownian sprites on 64 x 64 frames, with their ground truth")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--frames", type=int, default=10000)
    p.add_argument("--mode", choices=("xy", "xys"), default="xy", help="walk in (x, y) or in (x, y, scale)")
    p.add_argument("--shape", choices=("heart", "square", "ellipse"), default="heart")
    p.add_argument("--size", type=float, default=14.0, help="sprite size at scale 1, pixels")
    p.add_argument("--step", type=float, default=1.0, help="rms step of x and y per frame, pixels")
    p.add_argument("--margin", type=float, default=10.0, help="walls at margin and 64 - margin, pixels")
    p.add_argument("--scale-step", type=float, default=0.02)
    p.add_argument("--scale-min", type=float, default=0.6)
    p.add_argument("--scale-max", type=float, default=1.3)
    p.add_argument("--supersample", type=int, default=4, help="sub-pixel samples per pixel side")
    p.add_argument("--noise", type=float, default=0.0, help="Gaussian read noise (rms, pixel units)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.frames < 2:
        fail("--frames must be at least 2")
    if not 0 < a.margin < SIDE / 2:
        fail("--margin must lie in (0, 32)")
    if a.step <= 0 or a.size <= 0 or a.supersample < 1 or a.noise < 0:
        fail("--step, --size must be positive, --supersample at least 1, --noise non-negative")
    if a.mode == "xys" and not 0 < a.scale_min < a.scale_max:
        fail("--scale-min must be positive and below --scale-max")
    rng = np.random.default_rng(a.seed)
    lo, hi = a.margin, SIDE - a.margin
    x = walk(rng, a.frames, rng.uniform(lo, hi), a.step, lo, hi)
    y = walk(rng, a.frames, rng.uniform(lo, hi), a.step, lo, hi)
    if a.mode == "xys":
        s = walk(rng, a.frames, rng.uniform(a.scale_min, a.scale_max), a.scale_step, a.scale_min, a.scale_max)
        truth = np.stack([x, y, s], axis=1)
    else:
        s = np.ones(a.frames)
        truth = np.stack([x, y], axis=1)
    with h5py.File(a.out, "w") as f:
        obs = f.create_dataset("observed", (a.frames, SIDE, SIDE), np.float32, chunks=(min(256, a.frames), SIDE, SIDE))
        for i in range(0, a.frames, 1000):
            j = min(a.frames, i + 1000)
            img = render(a.shape, x[i:j], y[i:j], s[i:j], a.size, a.supersample)
            if a.noise > 0:
                img += rng.standard_normal(img.shape) * a.noise
            obs[i:j] = img.astype(np.float32)
        f["truth"] = truth
        f.attrs["generator"] = "gen_sprites.py"
        f.attrs["version"] = VERSION
        for k, v in vars(a).items():
            if k != "out":
                f.attrs[k] = v
        f.attrs["truth_columns"] = "x y scale" if a.mode == "xys" else "x y"
    print(f"gen_sprites.py: {a.frames} frames of a {a.shape} walking in ({', '.join(('x', 'y', 'scale')[:truth.shape[1]])})"
          f" -> {a.out}; expected latent scale ~ 1/{a.step:g} per pixel at lag 1")


if __name__ == "__main__":
    main()
