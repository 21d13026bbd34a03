#!/usr/bin/python3
"""Scores a latent space of molecular dynamics against the true backbone dihedrals.

    evaluate_md.py LATENT DATA [DATA ...] [--json]

LATENT is a dynae-mpi results file (its /latent/traj0, traj1, ... in order, one per DATA) or a
NumPy .npy file holding a (frames, d) latent of one trajectory (as the reference code saves it;
give several .npy files joined by commas for several trajectories). DATA is a generator file
(tools/gen_ala2.py, tools/gen_ala4.py: /truth/dihedrals, radians, and the frame spacing in its
`frame_ps` attribute), or FILE:DATASET naming any (frames, n) array of angles in radians.

Three scores, every one computed by the same code for any latent:
  - kNN R^2: the (cos, sin) of every true dihedral predicted from the latent by the mean of the
    k nearest latent neighbours (Euclidean, latent as given), in contiguous time blocks (k-fold:
    each block is predicted from the frames outside it, so a frame's time neighbours do not leak
    in). R^2 = 1 - residual / total sum of squares, pooled over the 2n targets, and per dihedral.
  - Implied timescales: one Markov-model estimate, applied identically to the latent and to the
    true dihedrals' (cos, sin): k-means on the coordinates as given (seeded, every trajectory
    together), transition counts at the lag (sliding window), the largest strongly connected set,
    the reversible maximum-likelihood transition matrix, ITS_i = -lag / ln lambda_i. The latent's
    slowest ITS is reported with its ratio to the truth's own.
  - Collapse: the eigenvalues of the covariance of the latent's lag-1 steps z(t+1) - z(t); a
    ratio smallest / largest below --collapse-ratio (0.05) means the latent has fallen onto a
    lower-dimensional set, which the run must not hide.

Exit codes: 0 done (and every check given passed); 1 a check failed (--min-r2, --max-its-error,
--fail-collapsed); 2 bad arguments or input (the message names the file and dataset).
"""
import argparse
import json
import os
import sys

import numpy as np

try:
    import h5py
    from scipy.cluster.vq import kmeans2
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.exit("evaluate_md.py: h5py or scipy is missing; run it with /usr/bin/python3 "
             "(Debian's python3-h5py, python3-scipy)")

TOOL = "evaluate_md.py"


class InputError(Exception):
    pass


def fail(msg, code=2):
    print(f"{TOOL}: error: {msg}", file=sys.stderr)
    sys.exit(code)


# ----------------------------------------------------------------------------------- reading
def read_latent(spec):
    """List of (frames, d) float64 arrays from a results.h5 or from .npy file(s)."""
    paths = spec.split(",")
    if all(p.endswith(".npy") for p in paths):
        out = []
        for p in paths:
            try:
                z = np.load(p)
            except (OSError, ValueError) as e:
                raise InputError(f"{p}: cannot read ({e})")
            if z.ndim != 2 or not np.issubdtype(z.dtype, np.number):
                raise InputError(f"{p}: expected a numeric (frames, d) array, got {z.dtype} {z.shape}")
            out.append(np.asarray(z, dtype=np.float64))
        return out
    if len(paths) != 1:
        raise InputError(f"{spec}: several files are accepted only as .npy")
    try:
        f = h5py.File(spec, "r")
    except OSError as e:
        raise InputError(f"{spec}: cannot open as HDF5 ({e})")
    with f:
        if "latent" not in f:
            raise InputError(f"{spec}: no /latent group (not a dynae-mpi results file?)")
        names = sorted((k for k in f["latent"] if k.startswith("traj") and k[4:].isdigit()),
                       key=lambda k: int(k[4:]))
        if not names or names != [f"traj{i}" for i in range(len(names))]:
            raise InputError(f"{spec}: /latent must hold traj0, traj1, ... (found {sorted(f['latent'])})")
        out = []
        for k in names:
            z = np.asarray(f["latent"][k], dtype=np.float64)
            if z.ndim != 2:
                raise InputError(f"{spec}:/latent/{k}: expected (frames, d), got shape {z.shape}")
            out.append(z)
        return out


def read_truth(spec):
    """(angles (frames, n) float64, frame_ps or None, names) of one DATA argument."""
    path, _, dset = spec.partition(":")
    dset = dset or "/truth/dihedrals"
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"{path}: cannot open as HDF5 ({e})")
    with f:
        if dset not in f or not isinstance(f[dset], h5py.Dataset):
            raise InputError(f"{path}: no dataset {dset}")
        a = np.asarray(f[dset], dtype=np.float64)
        if a.ndim != 2 or a.shape[0] < 2:
            raise InputError(f"{path}:{dset}: expected (frames, n) angles, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise InputError(f"{path}:{dset}: non-finite values")
        frames = f.attrs.get("frames")
        if frames is not None and int(frames) < a.shape[0]:
            a = a[:int(frames)]  # a file still being written: its complete frames only
        ps = f.attrs.get("frame_ps")
        names = f[dset].attrs.get("names")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names] if names is not None \
            else [f"angle{i}" for i in range(a.shape[1])]
    return a, (float(ps) if ps is not None else None), names


# ----------------------------------------------------------------------------------- scores
def knn_r2(z, y, k, folds):
    """Pooled and per-column R^2 of y predicted from z by k-nearest-neighbour means in
    `folds` contiguous blocks."""
    n = len(z)
    pred = np.empty_like(y)
    edges = np.linspace(0, n, folds + 1).astype(int)
    for a, b in zip(edges[:-1], edges[1:]):
        train = np.r_[0:a, b:n]
        tree = cKDTree(z[train])
        _, idx = tree.query(z[a:b], k=k)
        idx = idx.reshape(b - a, k)
        pred[a:b] = y[train][idx].mean(axis=1)
    res = ((y - pred) ** 2).sum(axis=0)
    tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - res.sum() / tot.sum(), 1.0 - res / np.maximum(tot, 1e-300)


def discretise(trajs, n_states, seed):
    """k-means labels per trajectory (all frames together, seeded)."""
    x = np.concatenate(trajs)
    rng = np.random.default_rng(seed)
    init = x[rng.choice(len(x), size=n_states, replace=False)]
    centres, _ = kmeans2(x, init, iter=20, minit="matrix")
    labels = cKDTree(centres).query(x)[1]
    out, at = [], 0
    for t in trajs:
        out.append(labels[at:at + len(t)])
        at += len(t)
    return out


def reversible_msm(dtrajs, n_states, lag, iters=100000, tol=1e-12):
    """Reversible maximum-likelihood transition matrix on the largest strongly connected set
    (the fixed point x_ij = (c_ij + c_ji) / (c_i / x_i + c_j / x_j) of the symmetric flux
    matrix); returns (T, active state indices)."""
    c = np.zeros((n_states, n_states))
    for d in dtrajs:
        if len(d) > lag:
            np.add.at(c, (d[:-lag], d[lag:]), 1.0)
    ncomp, lab = connected_components(coo_matrix(c > 0), directed=True, connection="strong")
    sizes = np.bincount(lab, weights=c.sum(axis=1), minlength=ncomp)
    active = np.flatnonzero(lab == np.argmax(sizes))
    c = c[np.ix_(active, active)]
    cs = c + c.T
    ci = c.sum(axis=1)
    x = cs / cs.sum()
    for _ in range(iters):
        xi = x.sum(axis=1)
        denom = ci[:, None] / xi[:, None] + ci[None, :] / xi[None, :]
        xn = np.where(cs > 0, cs / np.where(denom > 0, denom, 1.0), 0.0)
        xn /= xn.sum()
        if np.abs(xn - x).max() < tol:
            x = xn
            break
        x = xn
    pi = x.sum(axis=1)
    return x / pi[:, None], pi, active


def implied_timescales(trajs, n_states, lag, seed, n_its):
    """The n_its slowest implied timescales (frames; nan where lambda <= 0) and the active set size."""
    dtrajs = discretise(trajs, n_states, seed)
    t, pi, active = reversible_msm(dtrajs, n_states, lag)
    d = np.sqrt(pi)
    ev = np.sort(np.linalg.eigvalsh((d[:, None] * t / d[None, :] + (d[:, None] * t / d[None, :]).T) / 2))[::-1]
    ev = np.concatenate([ev[1:1 + n_its], np.full(max(0, n_its + 1 - len(ev)), np.nan)])
    with np.errstate(divide="ignore", invalid="ignore"):
        its = np.where((ev > 0) & (ev < 1), -lag / np.log(np.where((ev > 0) & (ev < 1), ev, 0.5)), np.nan)
    return its, len(active)


def step_covariance(trajs):
    """Eigenvalues (ascending) of the covariance of the lag-1 steps over every trajectory."""
    dz = np.concatenate([np.diff(z, axis=0) for z in trajs])
    dz = dz - dz.mean(axis=0)
    return np.linalg.eigvalsh(dz.T @ dz / len(dz))


def vamp2(trajs, lag):
    """VAMP-2 of a latent at a lag over every trajectory's pairs: 1 + ||C00^-1/2 C01 C11^-1/2||_F^2
    (the 1 is the constant function), each member's own mean removed, no Bessel correction;
    directions with eigenvalues below 1e-12 of the largest are left out."""
    x = np.concatenate([z[:-lag] for z in trajs if len(z) > lag])
    y = np.concatenate([z[lag:] for z in trajs if len(z) > lag])
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    n = len(x)

    def inv_sqrt(c):
        s, v = np.linalg.eigh(c)
        keep = s > 1e-12 * s.max()
        return v[:, keep] / np.sqrt(s[keep])

    k = inv_sqrt(x.T @ x / n).T @ (x.T @ y / n) @ inv_sqrt(y.T @ y / n)
    return float(1.0 + np.sum(k * k))


def evaluate(latents, truths, frame_ps, args):
    unit = "ps" if frame_ps is not None else "frames"
    frame_ps = frame_ps or 1.0
    feats = [np.concatenate([np.cos(a), np.sin(a)], axis=1) for a in truths]
    z_all = np.concatenate(latents)
    y_all = np.concatenate(feats)
    n_ang = truths[0].shape[1]
    r2, r2_cols = knn_r2(z_all, y_all, args.knn_k, args.folds)
    per_angle = [1.0 - ((1 - r2_cols[i]) * np.var(y_all[:, i]) + (1 - r2_cols[n_ang + i]) * np.var(y_all[:, n_ang + i]))
                 / (np.var(y_all[:, i]) + np.var(y_all[:, n_ang + i])) for i in range(n_ang)]
    its_z, act_z = implied_timescales(latents, args.states, args.msm_lag, args.seed, args.its)
    its_t, act_t = implied_timescales(feats, args.states, args.msm_lag, args.seed, args.its)
    ev = step_covariance(latents)
    ratio = float(ev[0] / ev[-1]) if ev[-1] > 0 else 0.0
    return dict(
        frames=int(len(z_all)), trajectories=len(latents), latent_dim=int(z_all.shape[1]),
        frame_ps=frame_ps if unit == "ps" else None,
        knn=dict(k=args.knn_k, folds=args.folds, r2=float(r2), r2_per_angle=[float(v) for v in per_angle]),
        msm=dict(states=args.states, lag_frames=args.msm_lag, seed=args.seed,
                 active_latent=int(act_z), active_truth=int(act_t),
                 its_latent=[float(v * frame_ps) for v in its_z], its_truth=[float(v * frame_ps) for v in its_t],
                 its_ratio=float(its_z[0] / its_t[0]) if np.isfinite(its_z[0]) and np.isfinite(its_t[0]) else None,
                 unit=unit),
        collapse=dict(step_cov_eigenvalues=[float(v) for v in ev], ratio=ratio, threshold=args.collapse_ratio,
                      collapsed=bool(ratio < args.collapse_ratio)))


def parse_args(argv):
    ap = argparse.ArgumentParser(prog=TOOL, description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("latent", help="results.h5, or latent .npy file(s) joined by commas")
    ap.add_argument("data", nargs="+", help="generator file per trajectory, or FILE:DATASET of angles (rad)")
    ap.add_argument("--knn-k", type=int, default=10, help="neighbours in the kNN regression (default 10)")
    ap.add_argument("--folds", type=int, default=5, help="contiguous blocks of the k-fold (default 5)")
    ap.add_argument("--states", type=int, default=100, help="k-means states of the Markov model (default 100)")
    ap.add_argument("--msm-lag", type=int, default=10, help="Markov-model lag in frames (default 10)")
    ap.add_argument("--its", type=int, default=3, help="implied timescales reported (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="k-means seed (default 0)")
    ap.add_argument("--frame-ps", type=float, help="time between frames (default: the data's frame_ps "
                    "attribute, else timescales are in frames)")
    ap.add_argument("--collapse-ratio", type=float, default=0.05,
                    help="smallest/largest step-covariance eigenvalue below which the latent counts "
                         "as collapsed (default 0.05)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    ap.add_argument("--min-r2", type=float, help="exit 1 when the pooled kNN R^2 is below this")
    ap.add_argument("--max-its-error", type=float,
                    help="exit 1 when |slowest ITS latent / truth - 1| is above this")
    ap.add_argument("--fail-collapsed", action="store_true", help="exit 1 when the latent is collapsed")
    a = ap.parse_args(argv)
    for name in ("knn_k", "states", "msm_lag", "its"):
        if getattr(a, name) < 1:
            fail(f"--{name.replace('_', '-')} must be at least 1")
    if a.folds < 2:
        fail("--folds must be at least 2")
    if a.frame_ps is not None and not a.frame_ps > 0:
        fail("--frame-ps must be positive")
    if not 0 < a.collapse_ratio < 1:
        fail("--collapse-ratio must lie in (0, 1)")
    return a


def report_text(r, latent, data):
    m, k, c = r["msm"], r["knn"], r["collapse"]
    u = m["unit"]
    print(f"latent {latent}: {r['trajectories']} trajectories, {r['frames']} frames, d = {r['latent_dim']}; "
          f"truth {', '.join(data)}")
    print(f"kNN R^2 (cos, sin of the dihedrals; k = {k['k']}, {k['folds']} contiguous folds): {k['r2']:.4f}"
          f"  (per dihedral: {', '.join(f'{v:.4f}' for v in k['r2_per_angle'])})")
    print(f"implied timescales ({m['states']} k-means states, lag {m['lag_frames']} frames, reversible MSM), {u}:")
    print(f"  latent:    {', '.join(f'{v:.1f}' for v in m['its_latent'])}  ({m['active_latent']} states connected)")
    print(f"  dihedrals: {', '.join(f'{v:.1f}' for v in m['its_truth'])}  ({m['active_truth']} states connected)")
    if m["its_ratio"] is not None:
        print(f"  slowest latent / truth: {m['its_ratio']:.3f}")
    ev = ", ".join(f"{v:.4g}" for v in c["step_cov_eigenvalues"])
    print(f"lag-1 step covariance eigenvalues: {ev}; smallest/largest {c['ratio']:.4f}"
          + (f"  COLLAPSED (< {c['threshold']})" if c["collapsed"] else f"  (not collapsed, >= {c['threshold']})"))


def main(argv=None):
    a = parse_args(argv)
    try:
        latents = read_latent(a.latent)
        truths, ps_list = [], []
        names = None
        for d in a.data:
            t, ps, nm = read_truth(d)
            truths.append(t)
            ps_list.append(ps)
            names = names or nm
        if len(latents) != len(truths):
            raise InputError(f"{a.latent}: {len(latents)} latent trajectories but {len(truths)} DATA arguments")
        for i, (z, t) in enumerate(zip(latents, truths)):
            if len(z) != len(t):
                raise InputError(f"trajectory {i}: the latent has {len(z)} frames, {a.data[i]} has {len(t)}")
            if not np.all(np.isfinite(z)):
                raise InputError(f"{a.latent}: trajectory {i}: non-finite latent values")
            if t.shape[1] != truths[0].shape[1] or z.shape[1] != latents[0].shape[1]:
                raise InputError(f"trajectory {i}: its width differs from trajectory 0's")
        n = sum(len(z) for z in latents)
        if n < a.folds * a.knn_k + a.folds or n < 2 * a.states or min(len(z) for z in latents) <= a.msm_lag:
            raise InputError(f"{n} frames are too few for --folds {a.folds}, --knn-k {a.knn_k}, "
                             f"--states {a.states}, --msm-lag {a.msm_lag}")
    except InputError as e:
        fail(str(e))
    frame_ps = a.frame_ps
    if frame_ps is None and all(p is not None for p in ps_list) and len(set(ps_list)) == 1:
        frame_ps = ps_list[0]
    r = evaluate(latents, truths, frame_ps, a)
    r["angles"] = names
    checks = []
    if a.min_r2 is not None and r["knn"]["r2"] < a.min_r2:
        checks.append(f"kNN R^2 {r['knn']['r2']:.4f} < {a.min_r2}")
    if a.max_its_error is not None:
        ratio = r["msm"]["its_ratio"]
        if ratio is None or abs(ratio - 1) > a.max_its_error:
            checks.append(f"slowest ITS ratio {ratio} off by more than {a.max_its_error}")
    if a.fail_collapsed and r["collapse"]["collapsed"]:
        checks.append(f"collapsed latent (step covariance ratio {r['collapse']['ratio']:.4f})")
    r["failed_checks"] = checks
    if a.json:
        print(json.dumps(r, indent=1))
    else:
        report_text(r, a.latent, a.data)
        for msg in checks:
            print(f"CHECK FAILED: {msg}")
    return 1 if checks else 0


if __name__ == "__main__":
    sys.exit(main())
