#!/usr/bin/python3
"""How well does a learned latent space recover known slow variables?

Reads the latent coordinates of a dynae-mpi results file (/latent/traj0, /latent/traj1, ...,
each (frames_i, d)) and one ground-truth dataset per trajectory (FILE:DATASET, (frames_i, k)),
pools all frames, and reports
  - R^2 of the best affine least-squares fit of the truth from the latent, per truth column and
    overall (1 - total residual / total variance), and the same for the latent from the truth;
  - the singular values of the fitted linear map (truth from latent): their ratio largest /
    smallest is 1 for an isometry up to scale, and their geometric mean is the scale (truth units
    per latent unit). With constant latent diffusion the expected scale is
    sqrt(kT * frame_time * lag); files written by gen_three_well.py carry it, and it is shown;
  - the distance-ratio spread: over random pairs of frames at least 10% of the truth's extent
    apart, |z_i - z_j| / |t_i - t_j|, its 90th percentile over its 10th. An isometry up to scale
    keeps every distance's ratio the same (spread 1); the singular-value ratio sees only the linear
    part of the map, this also sees a non-linear warp (a latent squeezed towards a Gaussian, a
    fold, a tear).

--min-r2, --max-sv-ratio and --max-distance-spread turn the report into a check: exit code 1 when
the worst R^2 of any column in either direction is below --min-r2, or a ratio is above its bound.
Exit code 2: bad arguments or inputs (missing file or dataset, frame counts that disagree, ...).

Example:
  /usr/bin/python3 tools/evaluate.py results/three-well/results.h5 inputs/three-well.h5:/truth
"""
import argparse
import json
import math
import os
import re
import sys

import numpy as np

try:
    import h5py
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.exit("evaluate.py: h5py is missing; run it with /usr/bin/python3 (Debian's python3-h5py)")


class InputError(Exception):
    """The user's mistake: reported with exit code 2."""


def read_2d(path, name):
    """Dataset `name` of HDF5 file `path` as (frames, k) float64, with the file's root attributes."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            if name not in f:
                raise InputError(f"{path}: no dataset {name}")
            d = f[name]
            if not isinstance(d, h5py.Dataset):
                raise InputError(f"{path}:{name} is a group, not a dataset")
            if d.dtype.kind not in "fiu":
                raise InputError(f"{path}:{name} has type {d.dtype}, not real numbers")
            a = np.asarray(d[()], dtype=np.float64)
            attrs = dict(f.attrs)
    except OSError as e:
        raise InputError(f"{path}: cannot read it as HDF5 ({e})")
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise InputError(f"{path}:{name} has shape {a.shape}; expected (frames, features)")
    if not np.isfinite(a).all():
        r = np.argwhere(~np.isfinite(a))[0][0]
        raise InputError(f"{path}:{name} has a non-finite value at frame {r}")
    return a, attrs


def latent_names(path, group):
    """The trajectory datasets of the results file, traj0 .. traj{n-1} in order."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            if group not in f or not isinstance(f[group], h5py.Group):
                raise InputError(f"{path}: no group /{group} (is this a dynae-mpi results file?)")
            found = {}
            for key in f[group]:
                m = re.fullmatch(r"traj(\d+)", key)
                if m:
                    found[int(m.group(1))] = f"/{group}/{key}"
            config = f.attrs.get("config")
    except OSError as e:
        raise InputError(f"{path}: cannot read it as HDF5 ({e})")
    if not found:
        raise InputError(f"{path}: /{group} holds no traj0, traj1, ... datasets")
    if sorted(found) != list(range(len(found))):
        raise InputError(f"{path}: /{group} trajectories are not numbered 0..{len(found) - 1}: "
                         + ", ".join(found[i] for i in sorted(found)))
    if isinstance(config, bytes):
        config = config.decode("utf-8", "replace")
    return [found[i] for i in range(len(found))], config


def split_ref(ref):
    """FILE:DATASET -> (FILE, DATASET); the dataset is after the last colon."""
    if ":" not in ref:
        raise InputError(f"truth '{ref}' is not of the form FILE:DATASET")
    path, name = ref.rsplit(":", 1)
    if not path or not name:
        raise InputError(f"truth '{ref}' is not of the form FILE:DATASET")
    return path, name


def config_lag(config):
    """data.lag from the effective configuration stored in the results, or None."""
    if not config:
        return None
    try:
        import tomllib
        return int(tomllib.loads(config).get("data", {}).get("lag", 1))
    except Exception:  # an unreadable config only loses the expected-scale line
        return None


def affine_fit(src, dst):
    """Least squares dst ~ src @ A + b; returns (A, per-column R^2, overall R^2)."""
    sc = src - src.mean(axis=0)
    dc = dst - dst.mean(axis=0)
    A = np.linalg.lstsq(sc, dc, rcond=None)[0]
    res = np.sum((dc - sc @ A)**2, axis=0)
    tot = np.sum(dc * dc, axis=0)
    # A constant column carries no information: count it as not recovered.
    cols = np.where(tot > 0, 1.0 - res / np.where(tot > 0, tot, 1.0), 0.0)
    overall = 1.0 - res.sum() / tot.sum() if tot.sum() > 0 else 0.0
    return A, cols, float(overall)


def distance_spread(latent, truth, pairs=200000, apart=0.1, seed=0):
    """p90 / p10 of |z_i - z_j| / |t_i - t_j| over `pairs` random pairs (a fixed seed) whose truth
    distance exceeds `apart` times the diagonal of the truth's bounding box; inf when the latent
    does not separate them (a p10 of 0), nan when no pair is that far apart."""
    rng = np.random.default_rng(seed)
    n = latent.shape[0]
    i, j = rng.integers(0, n, pairs), rng.integers(0, n, pairs)
    dt = np.linalg.norm(truth[i] - truth[j], axis=1)
    dz = np.linalg.norm(latent[i] - latent[j], axis=1)
    far = dt > apart * np.linalg.norm(truth.max(axis=0) - truth.min(axis=0))
    if not far.any():
        return math.nan
    lo, hi = np.percentile(dz[far] / dt[far], [10, 90])
    return float(hi / lo) if lo > 0 else math.inf


def evaluate(latent, truth):
    """The numbers of the report for pooled (N, d) latent and (N, k) truth."""
    A, r2_t_cols, r2_t = affine_fit(latent, truth)
    _, r2_l_cols, r2_l = affine_fit(truth, latent)
    sv = np.linalg.svd(A, compute_uv=False)
    ratio = float(sv[0] / sv[-1]) if sv[-1] > 0 else math.inf
    scale = float(np.exp(np.mean(np.log(sv)))) if sv[-1] > 0 else 0.0
    return {
        "frames": int(latent.shape[0]),
        "latent_dim": int(latent.shape[1]),
        "truth_dim": int(truth.shape[1]),
        "r2_truth_from_latent": r2_t,
        "r2_truth_from_latent_columns": [float(v) for v in r2_t_cols],
        "r2_latent_from_truth": r2_l,
        "r2_latent_from_truth_columns": [float(v) for v in r2_l_cols],
        "r2_worst": float(min(r2_t_cols.min(), r2_l_cols.min())),
        "singular_values": [float(v) for v in sv],
        "sv_ratio": ratio,
        "distance_spread": distance_spread(latent, truth),
        "scale_truth_per_latent": scale,
        "scale_latent_per_truth": 1.0 / scale if scale > 0 else math.inf,
    }


def plot(path, latent, truth, A):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    step = max(1, len(latent) // 20000)
    z, t = latent[::step], truth[::step]
    fit = (z - latent.mean(axis=0)) @ A + truth.mean(axis=0)
    k = min(truth.shape[1], 2)
    fig, ax = plt.subplots(1, k + 1, figsize=(5 * (k + 1), 4.5))
    for j in range(k):
        sc = ax[j].scatter(z[:, 0], z[:, 1 % z.shape[1]], c=t[:, j], s=1, cmap="viridis")
        ax[j].set(title=f"latent coloured by truth column {j}", xlabel="z0", ylabel="z1", aspect="equal")
        fig.colorbar(sc, ax=ax[j])
    for j in range(truth.shape[1]):
        ax[k].scatter(t[:, j], fit[:, j], s=1, label=f"column {j}")
    ax[k].set(title="truth vs affine fit from latent", xlabel="truth", ylabel="fit")
    ax[k].legend(markerscale=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Compare the latent space of a dynae-mpi results file with ground truth "
                    "(affine-fit R^2 both ways, singular-value ratio and scale of the fitted map).")
    p.add_argument("results", help="results.h5 written by dynae-mpi")
    p.add_argument("truth", nargs="+", metavar="FILE:DATASET",
                   help="ground truth, one per trajectory in the order of data.input "
                        "(e.g. inputs/three-well.h5:/truth)")
    p.add_argument("--latent-group", default="latent", help="group of the latent datasets (default latent)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--min-r2", type=float, help="exit 1 if any column's R^2 (either direction) is below this")
    p.add_argument("--max-sv-ratio", type=float, help="exit 1 if the singular-value ratio is above this")
    p.add_argument("--max-distance-spread", type=float, help="exit 1 if the distance-ratio spread is above this")
    p.add_argument("--plot", metavar="PNG", help="also draw the latent space coloured by the truth")
    a = p.parse_args(argv)
    if a.min_r2 is not None and not math.isfinite(a.min_r2):
        p.error("--min-r2 must be a finite number")
    if a.max_sv_ratio is not None and not (a.max_sv_ratio >= 1.0):
        p.error(f"--max-sv-ratio must be >= 1 (got {a.max_sv_ratio})")
    if a.max_distance_spread is not None and not (a.max_distance_spread >= 1.0):
        p.error(f"--max-distance-spread must be >= 1 (got {a.max_distance_spread})")
    return a


def load(a):
    """Pooled latent and truth arrays, and the expected latent scale when it is known."""
    names, config = latent_names(a.results, a.latent_group)
    if len(a.truth) != len(names):
        raise InputError(f"{a.results} holds {len(names)} trajectories but {len(a.truth)} truth "
                         "dataset(s) were given; give one per trajectory, in order")
    lat, tru, expected = [], [], None
    for name, ref in zip(names, a.truth):
        z, _ = read_2d(a.results, name)
        path, dset = split_ref(ref)
        t, attrs = read_2d(path, dset)
        if z.shape[0] != t.shape[0]:
            raise InputError(f"{a.results}:{name} has {z.shape[0]} frames but {ref} has {t.shape[0]}")
        if lat and (z.shape[1] != lat[0].shape[1] or t.shape[1] != tru[0].shape[1]):
            raise InputError(f"{a.results}:{name} or {ref}: column count differs from the first trajectory's")
        lat.append(z)
        tru.append(t)
        if "latent_scale_lag1" in attrs:
            expected = float(attrs["latent_scale_lag1"])
    latent, truth = np.concatenate(lat), np.concatenate(tru)
    if latent.shape[0] < max(latent.shape[1], truth.shape[1]) + 2:
        raise InputError(f"{a.results}: {latent.shape[0]} frames are too few to fit a map")
    lag = config_lag(config)
    if expected is not None and lag is not None:
        expected /= math.sqrt(lag)
    else:
        expected = None
    return latent, truth, expected


def report_text(r, expected):
    cols = lambda v: ", ".join(f"{x:.4f}" for x in v)
    lines = [
        f"frames {r['frames']}, latent dim {r['latent_dim']}, truth dim {r['truth_dim']}",
        f"R^2 truth from latent: {r['r2_truth_from_latent']:.4f} (columns {cols(r['r2_truth_from_latent_columns'])})",
        f"R^2 latent from truth: {r['r2_latent_from_truth']:.4f} (columns {cols(r['r2_latent_from_truth_columns'])})",
        f"singular values of the fitted map (truth per latent unit): {cols(r['singular_values'])}",
        f"singular-value ratio: {r['sv_ratio']:.4f} (1 = isometry up to scale)",
        f"distance-ratio spread: {r['distance_spread']:.4f} (p90 / p10 of latent over true distance, pairs at "
        "least 10% of the truth's extent apart; 1 = isometry up to scale)",
        f"scale: {r['scale_latent_per_truth']:.4f} latent units per truth unit",
    ]
    if expected is not None:
        lines.append(f"expected scale for constant unit diffusion: {expected:.4f} latent units per truth unit")
    return "\n".join(lines)


def main(argv=None):
    a = parse_args(argv)
    try:
        latent, truth, expected = load(a)
    except InputError as e:
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        return 2
    r = evaluate(latent, truth)
    r["expected_scale_latent_per_truth"] = expected
    failures = []
    if a.min_r2 is not None and r["r2_worst"] < a.min_r2:
        failures.append(f"worst R^2 {r['r2_worst']:.4f} < --min-r2 {a.min_r2}")
    if a.max_sv_ratio is not None and r["sv_ratio"] > a.max_sv_ratio:
        failures.append(f"singular-value ratio {r['sv_ratio']:.4f} > --max-sv-ratio {a.max_sv_ratio}")
    if a.max_distance_spread is not None and not (r["distance_spread"] <= a.max_distance_spread):
        failures.append(f"distance-ratio spread {r['distance_spread']:.4f} > --max-distance-spread "
                        f"{a.max_distance_spread}")
    r["failures"] = failures
    if a.json:
        # JSON has no infinity: a degenerate map reports null.
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
        print(json.dumps(clean, indent=2))
    else:
        print(report_text(r, expected))
        for f in failures:
            print(f"FAIL: {f}")
    if a.plot:
        A, _, _ = affine_fit(latent, truth)
        plot(a.plot, latent, truth, A)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
