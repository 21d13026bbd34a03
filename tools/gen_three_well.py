#!/usr/bin/python3
"""Example data for dynae-mpi: overdamped Langevin dynamics in a 2-D three-well potential,
observed through a non-linear warp.

The true coordinates (x, y) follow  dX = -grad V(X) dt + sqrt(2 kT dt) N(0, I)  (mobility 1),
integrated with Euler-Maruyama, one frame saved every --stride steps. V is the three-hole
potential: two deep wells near (+-1.05, -0.04), a shallower one near (0, 1.54), a barrier
bump near (0, 1/3) and weak quartic walls. The observation is warped: x' = x, y' = y + x^2,
which makes the observed diffusion strongly anisotropic and position dependent.

Output: one HDF5 file with
  /observed  (frames, 2) float32   the warped coordinates (what dynae-mpi reads)
  /truth     (frames, 2) float64   the true (x, y)
and root attributes holding every parameter. Same arguments and same numpy version give
bit-identical datasets.

A constant-diffusion latent space learned from these data should be the truth up to an isometry,
scaled so that one pair move has unit diffusion: latent ~ truth / sqrt(kT * dt * stride * lag).
The summary printed at the end gives that scale, the latent extent it implies, and how many
regular-space centres cluster.d_min would make there.
"""
import argparse
import math
import os
import sys
import time

import numpy as np

try:
    import h5py
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.exit("gen_three_well.py: h5py is missing; run it with /usr/bin/python3 (Debian's python3-h5py)")

VERSION = 1
POTENTIAL = ("V(x,y) = 3 exp(-x^2-(y-1/3)^2) - 3 exp(-x^2-(y-5/3)^2) - 5 exp(-(x-1)^2-y^2) "
             "- 5 exp(-(x+1)^2-y^2) + 0.2 x^4 + 0.2 (y-1/3)^4")
WARP = "x' = x, y' = y + x^2"
# Local minima of V (to 1e-6) and the radius of the core counted as "in the well".
MINIMA = np.array([[-1.048055, -0.042094], [1.048055, -0.042094], [0.0, 1.537082]])
WELL_NAMES = ("left", "right", "top")
CORE_RADIUS = 0.5
CHUNK_FRAMES = 20000  # frames per block of pre-drawn noise (fixed: part of the reproducibility)


def fail(msg, code=2):
    print(f"gen_three_well.py: error: {msg}", file=sys.stderr)
    sys.exit(code)


def potential(x, y):
    """V on arrays (used for the summary only)."""
    return (3 * np.exp(-x**2 - (y - 1 / 3)**2) - 3 * np.exp(-x**2 - (y - 5 / 3)**2)
            - 5 * np.exp(-(x - 1)**2 - y**2) - 5 * np.exp(-(x + 1)**2 - y**2)
            + 0.2 * x**4 + 0.2 * (y - 1 / 3)**4)


def integrate(frames, dt, stride, kT, seed, x0, y0):
    """Euler-Maruyama; returns (frames, 2) float64 with frame 0 = (x0, y0).

    A single particle in 2-D is a sequential recurrence with two numbers of state, so numpy on
    arrays of length 2 costs more in call overhead than it computes; plain float arithmetic in
    the loop is several times faster. The noise is drawn in numpy blocks."""
    rng = np.random.Generator(np.random.PCG64(seed))
    sig = math.sqrt(2.0 * kT * dt)
    exp = math.exp
    a, b = 1.0 / 3.0, 5.0 / 3.0
    out = np.empty((frames, 2))
    out[0] = (x0, y0)
    x, y = x0, y0
    done = 1
    while done < frames:
        n = min(CHUNK_FRAMES, frames - done)
        noise = rng.standard_normal((n * stride, 2)) * sig
        nx = noise[:, 0].tolist()
        ny = noise[:, 1].tolist()
        block = [None] * n
        k = 0
        for f in range(n):
            for _ in range(stride):
                xx = x * x
                yy = y * y
                ya = y - a
                yb = y - b
                e1 = exp(-xx - ya * ya)
                e2 = exp(-xx - yb * yb)
                e3 = exp(-(x - 1.0) * (x - 1.0) - yy)
                e4 = exp(-(x + 1.0) * (x + 1.0) - yy)
                gx = 6.0 * x * (e2 - e1) + 10.0 * ((x - 1.0) * e3 + (x + 1.0) * e4) + 0.8 * xx * x
                gy = 6.0 * (yb * e2 - ya * e1) + 10.0 * y * (e3 + e4) + 0.8 * ya * ya * ya
                x = x - gx * dt + nx[k]
                y = y - gy * dt + ny[k]
                k += 1
            block[f] = (x, y)
        out[done:done + n] = block
        if not (math.isfinite(x) and math.isfinite(y)) or abs(x) > 1e3 or abs(y) > 1e3:
            fail(f"the integration diverged (dt = {dt} is too large for this potential; try <= 0.005)")
        done += n
    return out


def well_visits(truth):
    """Per well: how many times the trajectory entered its core coming from another core (the
    first core reached counts once), and the fraction of frames spent in the core."""
    d = np.linalg.norm(truth[:, None, :] - MINIMA[None, :, :], axis=2)  # (frames, 3)
    inside = d.min(axis=1) < CORE_RADIUS
    core = d.argmin(axis=1)[inside]
    entries = np.zeros(len(MINIMA), dtype=np.int64)
    if core.size:
        starts = np.r_[0, np.flatnonzero(np.diff(core) != 0) + 1]
        entries = np.bincount(core[starts], minlength=len(MINIMA))
    occupancy = np.bincount(core, minlength=len(MINIMA)) / len(truth)
    return entries, occupancy


def regular_space_count(z, d_min):
    """Number of regular-space centres (SPEC section 4.2) of the points z, taken in order."""
    rest = z
    count = 0
    d2 = d_min * d_min
    while len(rest):
        count += 1
        rest = rest[np.sum((rest - rest[0])**2, axis=1) > d2]
    return count


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Generate the warped three-well example trajectory for dynae-mpi.",
        epilog="Example: /usr/bin/python3 tools/gen_three_well.py --out inputs/three-well.h5")
    p.add_argument("--frames", type=int, default=200000, help="frames to save (default 200000)")
    p.add_argument("--seed", type=int, default=0, help="random seed, >= 0 (default 0)")
    p.add_argument("--out", default="three-well.h5", help="output HDF5 file (default three-well.h5)")
    p.add_argument("--dt", type=float, default=0.002, help="integration time step (default 0.002)")
    p.add_argument("--stride", type=int, default=4,
                   help="integration steps between saved frames (default 4)")
    p.add_argument("--temperature", type=float, default=0.6,
                   help="kT in units of the potential (default 0.6)")
    p.add_argument("--d-min", type=float, default=5.0,
                   help="cluster.d_min used for the summary's bin estimate (default 5.0)")
    p.add_argument("--lag", type=int, default=1, help="data.lag used for the summary (default 1)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    a = p.parse_args(argv)
    if a.frames < 2:
        p.error(f"--frames must be >= 2 (got {a.frames})")
    if a.seed < 0:
        p.error(f"--seed must be >= 0 (got {a.seed})")
    if not (math.isfinite(a.dt) and a.dt > 0):
        p.error(f"--dt must be a positive number (got {a.dt})")
    if a.stride < 1:
        p.error(f"--stride must be >= 1 (got {a.stride})")
    if not (math.isfinite(a.temperature) and a.temperature > 0):
        p.error(f"--temperature must be a positive number (got {a.temperature})")
    if not (math.isfinite(a.d_min) and a.d_min > 0):
        p.error(f"--d-min must be a positive number (got {a.d_min})")
    if a.lag < 1 or a.lag >= a.frames:
        p.error(f"--lag must be in [1, frames) (got {a.lag})")
    return a


def write(path, observed, truth, attrs):
    """Writes to a temporary name and renames, so an interrupted run never leaves a file that
    looks complete."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        fail(f"cannot write {path}: folder {folder} does not exist")
    tmp = f"{path}.{os.getpid()}.tmp"  # unique: array jobs may generate the same file at once
    try:
        with h5py.File(tmp, "w") as f:
            # Contiguous (unchunked) layout suits dynae-mpi's collective hyperslab reads.
            d = f.create_dataset("observed", data=observed, track_times=False)
            d.attrs["description"] = "warped coordinates (x, y + x^2), input of dynae-mpi"
            d = f.create_dataset("truth", data=truth, track_times=False)
            d.attrs["description"] = "true coordinates (x, y) of the Langevin dynamics"
            for k, v in attrs.items():
                f.attrs[k] = v
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        fail(f"cannot write {path}: {e}")


def main(argv=None):
    a = parse_args(argv)
    t0 = time.perf_counter()
    truth = integrate(a.frames, a.dt, a.stride, a.temperature, a.seed, *MINIMA[0])
    seconds = time.perf_counter() - t0
    observed = np.empty_like(truth, dtype=np.float32)
    observed[:, 0] = truth[:, 0]
    observed[:, 1] = truth[:, 1] + truth[:, 0] * truth[:, 0]

    tau = a.dt * a.stride
    scale = 1.0 / math.sqrt(a.temperature * tau * a.lag)  # latent units per truth unit
    entries, occupancy = well_visits(truth)
    z = truth * scale
    extent = np.ptp(z, axis=0)
    extent_central = np.percentile(z, 99.5, axis=0) - np.percentile(z, 0.5, axis=0)
    dz = z[a.lag:] - z[:-a.lag]
    step_rms = float(np.sqrt(np.mean(np.sum(dz * dz, axis=1))))
    centres = regular_space_count(z, a.d_min)

    attrs = {
        "generator": f"gen_three_well.py version {VERSION}",
        "numpy_version": np.__version__,
        "seed": a.seed, "dt": a.dt, "stride": a.stride, "temperature": a.temperature,
        "frames": a.frames, "mobility": 1.0, "frame_time": tau,
        "integrator": "Euler-Maruyama; frame 0 is the start point, frame j is after j*stride steps",
        "start": MINIMA[0], "potential": POTENTIAL, "warp": WARP,
        "well_minima": MINIMA, "well_core_radius": CORE_RADIUS, "well_entries": entries,
        "latent_scale_lag1": 1.0 / math.sqrt(a.temperature * tau),
    }
    write(a.out, observed, truth, attrs)

    if not a.quiet:
        print(f"wrote {a.out}: /observed ({a.frames}, 2) float32, /truth ({a.frames}, 2) float64")
        print(f"parameters: seed {a.seed}, dt {a.dt}, stride {a.stride} (frame time {tau:g}), "
              f"kT {a.temperature}, mobility 1")
        print(f"integration: {a.frames * a.stride} steps in {seconds:.2f} s")
        for i, name in enumerate(WELL_NAMES):
            print(f"well {name:5s} ({MINIMA[i, 0]:+.3f}, {MINIMA[i, 1]:+.3f}): entered {entries[i]} times, "
                  f"{100 * occupancy[i]:.1f}% of frames within {CORE_RADIUS}")
        print(f"expected latent (lag {a.lag}): truth * {scale:.2f}; extent {extent[0]:.1f} x {extent[1]:.1f} "
              f"(central 99%: {extent_central[0]:.1f} x {extent_central[1]:.1f}); "
              f"deep wells {scale * 2 * MINIMA[1, 0]:.1f} apart")
        print(f"expected lag-{a.lag} move: rms {step_rms:.2f} latent units, {a.d_min / step_rms:.1f} moves per "
              f"d_min; regular-space centres at d_min {a.d_min}: {centres}")
    if a.dt > 0.01:
        print(f"gen_three_well.py: warning: dt = {a.dt} > 0.01 biases Euler-Maruyama in the wells "
              "(their curvature is about 10)", file=sys.stderr)
    if entries.min() < 2:
        names = ", ".join(WELL_NAMES[i] for i in range(len(MINIMA)) if entries[i] < 2)
        print(f"gen_three_well.py: warning: well(s) {names} entered fewer than 2 times; "
              "use more frames or a higher temperature", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
