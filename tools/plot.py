#!/usr/bin/python3
"""Figures of a dynae-mpi results file, as PNG: the latent free-energy surface, the training curves,
and the latent coloured by known true coordinates.

    /usr/bin/python3 tools/plot.py results.h5 [--out DIR] [--truth FILE:DATASET ...]

Everything is read from results.h5 (SPEC section 12):

  free_energy.png  /fields/: the free energy from the histogram of the latent and the one from the
                   learned force, side by side on one colour scale (kT), with the learned force f
                   as arrows and the diffusion M as ellipses of semi-axes proportional to
                   sqrt(M_ii) (the rms move of one lag along each axis is sqrt(2 M_ii)), drawn in
                   cells holding at least 5 frames; the colour scale ends at the highest value
                   of either map there (the few outer cells above it are clipped). latent_dim 1: the two free-energy curves, and f and M
                   below them. latent_dim 3: the projections onto the three pairs of axes, i.e.
                   the marginal free energies -ln sum over the third axis of exp(-F), with f and M
                   averaged over the third axis weighted by the frames per cell.
  training.png     /history/: reconstruction, sliced-Wasserstein and prior losses (train and
                   test) per epoch, and the VAMP-2 score of the test latent.
  latent_truth.png with --truth: the latent of every frame (latent_dim 3: its first two axes)
                   coloured by each column of the true coordinates (one panel per column; a
                   cyclic colour map for angles, i.e. a dataset whose name says dihedral or angle).
                   One --truth per trajectory of /latent/, in order. When the truth holds more
                   frames than the latent (a file that was still being written when the run read
                   it), frame i of the latent is paired with frame i of the truth and the truth's
                   extra frames at the end are left out, as tools/evaluate_md.py does; a truth with
                   fewer frames than the latent is an error.

Exit codes: 0 written, 2 bad arguments or input (a missing file, group or dataset, latent_dim
above 3, a truth shorter than the latent). Needs matplotlib and h5py (Debian: python3-matplotlib,
python3-h5py).
"""
import argparse
import os
import sys

try:
    import h5py
    import numpy as np
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import EllipseCollection
except ImportError as missing:  # pragma: no cover - depends on the interpreter
    sys.exit("plot.py: %s is missing; run it with /usr/bin/python3 (Debian's python3-matplotlib, python3-h5py)"
             % missing.name)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_plumed import InputError, open_hdf5, text  # noqa: E402  (same folder: results.h5 readers)

DPI = 120
ARROWS = 14  # arrows per axis at most (ellipses on every other one)


def need(f, path, name):
    if name not in f or not isinstance(f[name], h5py.Dataset):
        raise InputError("%s: no dataset /%s" % (path, name))
    return f[name][()]


def read_fields(path, f):
    if "fields" not in f:
        raise InputError("%s: no /fields group (written at the end of training for latent_dim 1 to 3, "
                         "or by dynae-mpi INPUT --analyze)" % path)
    d = None
    axes = []
    while "fields/axis%d" % len(axes) in f:
        axes.append(np.asarray(f["fields/axis%d" % len(axes)][()], dtype=np.float64))
    d = len(axes)
    if not 1 <= d <= 3:
        raise InputError("%s: /fields has %d axes; the figures are drawn for latent_dim 1 to 3" % (path, d))
    shape = tuple(len(a) for a in axes)
    out = {"axes": axes, "d": d}
    for name, want in (("force", shape + (d,)), ("diffusion", shape + (d,)), ("count", shape),
                       ("free_energy_hist", shape), ("free_energy_force", shape)):
        a = np.asarray(need(f, path, "fields/" + name), dtype=np.float64)
        if a.shape != want:
            raise InputError("%s: /fields/%s has shape %s, expected %s" % (path, name, a.shape, want))
        out[name] = a
    out["rms"] = float(f["fields"].attrs.get("rms_difference_kT", np.nan))
    out["min_count"] = int(f["fields"].attrs.get("min_count", 100))
    return out


def read_results(path):
    with open_hdf5(path) as f:
        if "latent" not in f or not len(f["latent"]):
            raise InputError("%s: no /latent group" % path)
        d = int(f["latent/traj0"].shape[1]) if f["latent/traj0"].ndim == 2 else 0
        if not 1 <= d <= 3:
            raise InputError("%s: /latent/traj0 has latent_dim %d; the figures are drawn for latent_dim 1 to 3"
                             % (path, d))
        latent = []
        while "latent/traj%d" % len(latent) in f:
            latent.append(np.asarray(f["latent/traj%d" % len(latent)][()], dtype=np.float64))
        if "history" not in f:
            raise InputError("%s: no /history group" % path)
        hist = {k: np.asarray(v[()], dtype=np.float64) for k, v in f["history"].items()}
        if "epoch" not in hist:
            raise InputError("%s: no dataset /history/epoch" % path)
        fields = read_fields(path, f)
        if fields["d"] != d:
            raise InputError("%s: /fields has %d axes but the latent has dimension %d" % (path, fields["d"], d))
    return latent, hist, fields


def read_truth(spec, frames):
    """(values (frames, k), column names, cyclic) of one FILE:DATASET, cut to `frames` rows."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise InputError("--truth %s: expected FILE:DATASET" % spec)
    with open_hdf5(path) as f:
        if name not in f or not isinstance(f[name], h5py.Dataset):
            raise InputError("%s: no dataset %s" % (path, name))
        a = np.asarray(f[name][()], dtype=np.float64)
        names = f[name].attrs.get("names")
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise InputError("%s:%s: expected (frames, k) values, got shape %s" % (path, name, a.shape))
    if len(a) < frames:
        raise InputError("%s:%s has %d frames, fewer than the latent's %d" % (path, name, len(a), frames))
    names = [text(n) for n in names] if names is not None and len(names) == a.shape[1] else \
        ["%s[%d]" % (name.rsplit("/", 1)[-1], i) for i in range(a.shape[1])]
    cyclic = "dihedral" in name.lower() or "angle" in name.lower()
    return a[:frames], names, cyclic


def save(fig, out, name):
    path = os.path.join(out, name)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    print("%s written" % path)
    return path


# ------------------------------------------------------------------------------ free energy
def marginal(F, axis):
    """-ln sum exp(-F) over one axis, minimum 0 (NaN where every cell is NaN)."""
    m = np.nanmin(F)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.nansum(np.exp(-(F - m)), axis=axis)
        out = np.where(s > 0, -np.log(s), np.nan)
    return out - np.nanmin(out)


def project(fields, keep):
    """The fields on the latent axes `keep` (two of three): marginal free energies, frame-weighted f and M."""
    drop = ({0, 1, 2} - set(keep)).pop()
    count = fields["count"]
    w = count.sum(axis=drop)
    def mean(v):
        with np.errstate(invalid="ignore"):
            return np.stack([(v[..., c] * count).sum(axis=drop) / np.where(w > 0, w, 1) for c in keep], axis=-1)
    return {"axes": [fields["axes"][k] for k in keep], "count": w,
            "free_energy_hist": marginal(fields["free_energy_hist"], drop),
            "free_energy_force": marginal(fields["free_energy_force"], drop),
            "force": mean(fields["force"]), "diffusion": mean(fields["diffusion"]), "labels": keep}


def colour_top(fields):
    """The top of the colour scale: the highest free energy of either map among cells holding at
    least 5 frames (the few outer cells of 1 to 4 frames would stretch the scale and are clipped)."""
    held = fields["count"] >= 5
    if not held.any():
        held = fields["count"] > 0
    return float(np.ceil(max(np.nanmax(fields["free_energy_hist"][held]), np.nanmax(fields["free_energy_force"][held]))))


def lattice(n, every):
    """Every `every`-th index of an axis of n points, centred."""
    return np.arange((n - 1) % every // 2 + every // 2, n, every) if every > 1 else np.arange(n)


def surface(ax, g, key, top, title):
    """One free-energy map with arrows of f and ellipses of M on the cells holding frames."""
    x, y = g["axes"]
    F = g[key].copy()
    held = g["count"] > 0
    F[~held] = np.nan  # the force free energy is defined everywhere but means nothing off the data
    mesh = ax.pcolormesh(x, y, F.T, shading="nearest", cmap="viridis", vmin=0, vmax=top)
    every = max(1, max(len(x), len(y)) // ARROWS)
    dx, dy = every * (x[1] - x[0]), every * (y[1] - y[0])
    ii, jj = np.meshgrid(lattice(len(x), every), lattice(len(y), every), indexing="ij")
    sel = g["count"][ii, jj] >= 5
    ii, jj = ii[sel], jj[sel]
    if len(ii):
        f = g["force"][ii, jj]
        size = np.hypot(f[:, 0], f[:, 1])
        # the median arrow spans half the spacing; the longest are clipped to 1.2 spacings
        scale = max(np.median(size), 1e-300) / (0.5 * min(dx, dy))
        k = np.minimum(1.0, 1.2 * min(dx, dy) * scale / np.maximum(size, 1e-300))
        ax.quiver(x[ii], y[jj], k * f[:, 0], k * f[:, 1], color="white", edgecolor="black", linewidth=0.3,
                  angles="xy", scale_units="xy", scale=scale, pivot="mid", width=0.005)
        # ellipses on every other arrow point, semi-axes sqrt(M_ii), the median one a quarter of the spacing
        half = ((ii // every) % 2 == 0) & ((jj // every) % 2 == 0)
        s = np.sqrt(g["diffusion"][ii[half], jj[half]])
        r = 0.25 * min(dx, dy) / max(np.median(s), 1e-300) if len(s) else 1
        ax.add_collection(EllipseCollection(2 * r * s[:, 0], 2 * r * s[:, 1], np.zeros(len(s)), units="xy",
                                            offsets=np.column_stack([x[ii[half]], y[jj[half]]]),
                                            offset_transform=ax.transData, facecolors="none",
                                            edgecolors="tab:red", linewidths=1.0))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("z%d (latent units)" % g["labels"][0])
    ax.set_ylabel("z%d (latent units)" % g["labels"][1])
    ax.set_aspect("equal")
    return mesh


def plot_free_energy(fields, out):
    d = fields["d"]
    rms = fields["rms"]
    note = "RMS difference %.2f kT over cells with >= %d frames" % (rms, fields["min_count"]) if np.isfinite(rms) \
        else "no cell holds %d frames: no RMS difference (a coarser analysis.grid helps)" % fields["min_count"]
    if d == 1:
        z = fields["axes"][0]
        held = fields["count"] > 0
        fig, (a0, a1) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
        a0.plot(z[held], fields["free_energy_hist"][held], "o", ms=3, label="histogram")
        a0.plot(z, fields["free_energy_force"], "-", label="from the learned force")
        a0.set_ylim(-0.3, colour_top(fields) + 0.5)
        a0.set_ylabel("free energy F / kT")
        a0.legend(frameon=False)
        a0.set_title("latent free energy (" + note + ")", fontsize=10)
        a1.plot(z, fields["force"][:, 0], label="force f")
        a1.plot(z, fields["diffusion"][:, 0], label="diffusion M")
        a1.axhline(0, color="0.6", lw=0.6)
        a1.set_xlabel("z0 (latent units)")
        a1.set_ylabel("f (kT / latent unit), M (units$^2$ / lag)")
        a1.legend(frameon=False)
        fig.tight_layout()
        return save(fig, out, "free_energy.png")
    views = [dict(fields, labels=(0, 1))] if d == 2 else [project(fields, k) for k in ((0, 1), (0, 2), (1, 2))]
    top = max(colour_top(v) for v in views)
    fig, axs = plt.subplots(len(views), 2, figsize=(11, 5.4 * len(views)), squeeze=False)
    fig.subplots_adjust(top=0.84 if d == 2 else 0.93, hspace=0.3)
    for r, v in enumerate(views):
        mesh = surface(axs[r, 0], v, "free_energy_hist", top, "histogram: -ln(frames per cell)")
        surface(axs[r, 1], v, "free_energy_force", top, "from the learned force: grad F closest to -f")
    fig.colorbar(mesh, ax=axs.ravel().tolist(), label="free energy F / kT (clipped at %g)" % top,
                 shrink=0.9 if d == 2 else 0.5, extend="max")
    what = "" if d == 2 else " (latent_dim 3: marginals over the third axis, f and M frame-weighted means)"
    fig.suptitle("latent free energy%s\narrows: learned force f (lengths relative); red ellipses: diffusion M, "
                 "semi-axes ~ sqrt(M_ii); white: no frames\n%s" % (what, note), fontsize=10)
    return save(fig, out, "free_energy.png")


# ------------------------------------------------------------------------------ history
def plot_history(hist, out):
    epoch = hist["epoch"]
    panels = [("reconstruction loss", "loss_rec"), ("sliced-Wasserstein loss", "loss_sw"), ("prior loss", "loss_prior")]
    panels = [(t, k) for t, k in panels if k + "_train" in hist or k + "_test" in hist]
    vamp = "vamp2_test" in hist and np.isfinite(hist["vamp2_test"]).any()
    n = len(panels) + (1 if vamp else 0)
    if n == 0:
        raise InputError("/history has no loss datasets")
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    fig, axs = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.4 * rows), squeeze=False)
    for ax, (title, key) in zip(axs.ravel(), panels):
        for part, style in (("train", "-"), ("test", "--")):
            if key + "_" + part in hist:
                y = hist[key + "_" + part]
                ax.plot(epoch, y, style, marker=".", label=part)
        ys = np.concatenate([hist[k] for k in (key + "_train", key + "_test") if k in hist])
        ys = ys[np.isfinite(ys)]
        if len(ys) and ys.min() > 0 and ys.max() / ys.min() > 30:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch (0: warm-up)")
        ax.legend(frameon=False)
    if vamp:
        ax = axs.ravel()[len(panels)]
        ax.plot(epoch, hist["vamp2_test"], marker=".", color="tab:green")
        ax.set_title("VAMP-2 score of the test latent", fontsize=10)
        ax.set_xlabel("epoch (0: warm-up)")
    for ax in axs.ravel()[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return save(fig, out, "training.png")


# ------------------------------------------------------------------------------ truth
def plot_truth(latent, truths, out):
    z = np.concatenate(latent)
    t = np.concatenate([a for a, _, _ in truths])
    names, cyclic = truths[0][1], truths[0][2]
    d = z.shape[1]
    k = t.shape[1]
    cols = min(k, 3)
    rows = (k + cols - 1) // cols
    fig, axs = plt.subplots(rows, cols, figsize=(4.8 * cols + 0.6, 4.3 * rows), squeeze=False)
    order = np.random.default_rng(0).permutation(len(z))  # no trajectory segment drawn on top of the rest
    ms = max(0.3, min(4.0, 2e4 / len(z)))
    for c in range(k):
        ax = axs.ravel()[c]
        x = z[order, 0]
        y = z[order, 1] if d > 1 else t[order, c]
        if cyclic:
            sc = ax.scatter(x, y, c=np.degrees(t[order, c]), s=ms, cmap="twilight", vmin=-180, vmax=180,
                            linewidths=0, rasterized=True)
        else:
            sc = ax.scatter(x, y, c=t[order, c], s=ms, cmap="viridis", linewidths=0, rasterized=True)
        ax.set_xlabel("z0")
        ax.set_ylabel("z1" if d > 1 else names[c])
        if d > 1:
            ax.set_aspect("equal", adjustable="datalim")
        ax.set_title("coloured by %s" % names[c] + (" (degrees)" if cyclic else ""), fontsize=10)
        fig.colorbar(sc, ax=ax, shrink=0.85)
    for ax in axs.ravel()[k:]:
        ax.set_visible(False)
    if d == 3:
        fig.suptitle("latent axes z0, z1 of 3", fontsize=10)
    fig.tight_layout()
    return save(fig, out, "latent_truth.png")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("results", help="results.h5 written by dynae-mpi")
    p.add_argument("--out", default=".", help="folder for the PNG files (default: the current one; made if missing)")
    p.add_argument("--truth", action="append", default=[], metavar="FILE:DATASET",
                   help="true coordinates (frames, k) of one trajectory; once per trajectory of /latent")
    args = p.parse_args(argv)
    try:
        latent, hist, fields = read_results(args.results)
        truths = []
        if args.truth:
            if len(args.truth) != len(latent):
                raise InputError("%s has %d latent trajectories but %d --truth were given"
                                 % (args.results, len(latent), len(args.truth)))
            truths = [read_truth(spec, len(z)) for spec, z in zip(args.truth, latent)]
            if any(a.shape[1] != truths[0][0].shape[1] for a, _, _ in truths):
                raise InputError("the --truth datasets have different numbers of columns")
        try:
            os.makedirs(args.out, exist_ok=True)
        except OSError as e:
            raise InputError("%s: cannot make the folder (%s)" % (args.out, e))
        plot_free_energy(fields, args.out)
        plot_history(hist, args.out)
        if truths:
            plot_truth(latent, truths, args.out)
    except InputError as e:
        print("plot.py: error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
