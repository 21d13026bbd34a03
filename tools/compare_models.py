#!/usr/bin/python3
"""Trains DynamicsAE and the three baselines (beta-VAE, SWAE, SDE-VAE) on the same data with the
same budget and prints the paper-style table: how well the latent recovers the ground truth (R^2 of
the truth from the latent, affine fit), whether it is an isometry (the singular-value ratio of that
fit, and the spread of the ratios of latent to true distances, which also sees non-linear warps;
both 1 for an isometry up to scale; see tools/evaluate.py, whose functions are used), and the
implied timescales of a Markov state model built on the latent.

    /usr/bin/python3 tools/compare_models.py FILE:DATASET --truth FILE:DATASET [options]

Every model is a dynae-mpi run (`--ranks` ranks, `nice -n 10`) of the configuration `--config`
(default: the reference code's defaults, see DEFAULT_CONFIG) with model.type set, the data, seed and
train.epochs given here; the runs go to OUT/dynae_<model>/. With --reference DIR the method authors'
PyTorch code (DIR/main.py) trains its own four models on the same frames with the same settings
(latent dimension, widths, beta, learning rate, batch size, epochs, seed, projections, d_min, bias
factor gamma, nu; one thread each) in OUT/ref_<model>/, and its latent (the encoder mean for the
VAEs) is scored the same way, so the table shows both codes side by side. The reference trains
on frames 0..N-2 as pairs with their successors (lag 1) and standardises nothing; the default
configuration matches that (data.lag = 1, data.standardize = false).

Images, (frames, 64, 64) or (frames, channels, 64, 64) as tools/gen_sprites.py writes them, are
trained with the convolutional networks (the default configuration then has model.network =
"conv", encoder [256] and decoder [256]: 16 channels in the encoder's 1x1 convolution, with which
the latent of a sprite walk does not fold as it does with 2, and the loss and bin settings of
inputs/sprites.toml: beta 100, since a frame's reconstruction error sums over 4096 pixels, d_min 8
and batches of 128, and for DynamicsAE its start from the leading TICs, train.warmup_target =
"tica"; README "Image data"); --reference takes (frames, features) data only.

Implied timescales: tools/evaluate_md.py's Markov state model (k-means of the latent of all
frames into `--clusters` states, reversible maximum-likelihood transition matrix at `--msm-lag`
frames), t_i = -lag / ln(lambda_i) of its eigenvalues after the first; the first `--timescales`
are shown, in frames. The same is done on the truth itself, the row to compare with. A latent that separates the
metastable states gives timescales close to the truth's; one that mixes them, shorter ones.

Output: the table on stdout, and OUT/table.json with every number (and the wall time of each run).
A run whose output exists (with its recorded time) is not run again: a second call rescores.
Exit code 2 for bad arguments or inputs, 1 when a run fails.
"""
import argparse
import glob
import json
import math
import os
import subprocess
import sys
import time
import tomllib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evaluate  # noqa: E402  (R^2 and the isometry ratio)
import evaluate_md  # noqa: E402  (implied timescales)
from md_study import REFERENCE_INI  # noqa: E402  (the reference's configuration file)

MODELS = ("dynamicsae", "vae", "swae", "sdevae")
REF_NAMES = {"dynamicsae": "DynamicsAE", "vae": "VAE", "swae": "SWAE", "sdevae": "SDEVAE"}

# The reference code's defaults (its examples/sample_config.ini), in dynae-mpi's keys.
DEFAULT_CONFIG = """
[data]
input = ["@INPUT@"]
lag = 1
test_fraction = 0.2
standardize = false

[model]
latent_dim = 2
@NETS@
prior = [32, 32]

[loss]
beta = @BETA@
projections = 50
nu = 0.0065

[cluster]
d_min = @DMIN@
gamma = 2.0

[train]
epochs = 50
batch_size = @BATCH@
lr = 1e-3
seed = 0

[output]
dir = "results"
checkpoint_every = 0
save_reconstruction = false
quiet = true
"""
MLP_NETS = "encoder = [32, 32, 32]\ndecoder = [32, 32, 32]"
CONV_NETS = 'network = "conv"\nencoder = [256]\ndecoder = [256]'
# (beta, d_min, batch_size): the reference's example values, and inputs/sprites.toml's for images
MLP_SETTINGS = ("10.0", "5.0", "256")
CONV_SETTINGS = ("100.0", "8.0", "128")
# DynamicsAE's start on images, as in inputs/sprites.toml (the baselines have no warm-up epoch)
CONV_DYNAMICSAE_SETS = ["train.warmup_target=tica"]


def default_config(data, nets, beta, d_min, batch):
    """DEFAULT_CONFIG's text for FILE:DATASET `data` with these nets and settings."""
    return (DEFAULT_CONFIG.replace("@INPUT@", data).replace("@NETS@", nets).replace("@BETA@", str(beta))
            .replace("@DMIN@", str(d_min)).replace("@BATCH@", str(batch)))


def fail(msg, code=2):
    print(f"compare_models.py: error: {msg}", file=sys.stderr)
    sys.exit(code)


def read_input(path, name):
    """The frames of FILE:DATASET as (frames, features), and whether they are images (frames,
    [channels,] 64, 64), read as channels * 64 * 64 features."""
    try:
        with evaluate.h5py.File(path, "r") as f:
            shape = f[name].shape if name in f and isinstance(f[name], evaluate.h5py.Dataset) else None
    except OSError:
        shape = None  # read_2d says what is wrong
    if shape and len(shape) in (3, 4) and shape[-2:] == (64, 64):
        with evaluate.h5py.File(path, "r") as f:
            return np.asarray(f[name][()], dtype=np.float32).reshape(shape[0], -1), True
    return evaluate.read_2d(path, name)[0], False


def load_data(ref):
    """FILE:DATASET -> (file, dataset, frames as read_input gives them, whether they are images);
    exit code 2 with the reason when it cannot be read."""
    try:
        dpath, dname = evaluate.split_ref(ref)
        return (dpath, dname, *read_input(dpath, dname))
    except evaluate.InputError as e:
        fail(str(e))


def implied_timescales(x, a):
    """The a.timescales slowest implied timescales (frames) of an MSM of trajectory x (evaluate_md's)."""
    its, _ = evaluate_md.implied_timescales([np.asarray(x, dtype=np.float64)], a.clusters, a.msm_lag, a.seed,
                                            a.timescales)
    return [float(t) for t in its]


def score(latent, truth, a):
    r = evaluate.evaluate(latent, truth)
    return {"r2": r["r2_truth_from_latent"], "r2_worst": min(r["r2_truth_from_latent_columns"]),
            "sv_ratio": r["sv_ratio"], "distance_spread": r["distance_spread"],
            "timescales": implied_timescales(latent, a)}


def run(cmd, cwd, log, env=None, done=None):
    """Runs cmd (stdout and stderr to log) unless done (a file) exists; returns the seconds it took,
    kept in done + ".seconds" for later reuse."""
    if done and os.path.exists(done) and os.path.exists(done + ".seconds"):
        with open(done + ".seconds") as fp:
            return float(fp.read())
    t0 = time.time()
    with open(log, "w") as fp:
        p = subprocess.run(cmd, cwd=cwd, stdout=fp, stderr=subprocess.STDOUT, env=env)
    if p.returncode:
        fail(f"{' '.join(cmd)} failed with exit code {p.returncode}; see {log}", 1)
    secs = round(time.time() - t0, 3)  # as kept
    if done and os.path.exists(done):
        with open(done + ".seconds", "w") as fp:
            fp.write(f"{secs:.3f}\n")
    return secs


def run_dynae(model, a, config, extra=()):
    out = os.path.join(a.out, f"dynae_{model}")
    sets = ["--set", f"model.type={model}", "--set", f"train.seed={a.seed}", "--set", f"output.dir={out}"]
    if a.epochs:
        sets += ["--set", f"train.epochs={a.epochs}"]
    for s in [*extra, *(a.set or [])]:
        sets += ["--set", s]
    cmd = ["nice", "-n", "10", a.mpiexec, "-n", str(a.ranks), a.exe, config, *sets]
    secs = run(cmd, a.out, os.path.join(a.out, f"dynae_{model}.log"), done=os.path.join(out, "results.h5"))
    with evaluate.h5py.File(os.path.join(out, "results.h5"), "r") as f:
        z = f["latent/traj0"][()]
        eff = f.attrs["config"]
        per_epoch = float(np.mean(f["history/seconds"][()]))
    eff = tomllib.loads(eff.decode() if isinstance(eff, bytes) else str(eff))
    return z, secs, per_epoch, eff


def reference_epoch_seconds(rdir, epochs):
    """The reference's own training time per epoch (without start-up and the final evaluation, as
    dynae-mpi's /history/seconds), from the log it writes under rdir/Results; NaN when absent."""
    for log in glob.glob(os.path.join(rdir, "Results", "*_train.log")):
        for line in open(log):
            if line.startswith("Total training time:"):
                return float(line.split(":")[1]) / epochs
    return math.nan


def run_reference(model, a, eff, npy):
    out = os.path.join(a.out, f"ref_{model}")
    os.makedirs(out, exist_ok=True)
    m, lo, tr = eff["model"], eff["loss"], eff["train"]
    if len(set(m["encoder"])) != 1 or len(m["encoder"]) != 3 or len(set(m["decoder"])) != 1 or len(m["decoder"]) != 3:
        fail("--reference: the reference code builds three hidden layers of one width; model.encoder and "
             "model.decoder must be such")
    ini = REFERENCE_INI.format(d=m["latent_dim"], n1=m["encoder"][0], n2=m["decoder"][0], model=REF_NAMES[model],
                               L=lo["projections"], d_min=eff["cluster"]["d_min"], gamma=eff["cluster"]["gamma"],
                               nu=lo["nu"], batch=tr["batch_size"], epochs=tr["epochs"], lr=tr["lr"],
                               beta=lo["beta"], npy=npy, seed=a.seed)
    with open(os.path.join(out, "config.ini"), "w") as fp:
        fp.write(ini)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = ["nice", "-n", "10", a.python, os.path.join(a.reference, "main.py"), "-config", "config.ini"]
    def latent():
        return sorted(glob.glob(os.path.join(out, "Results", "*traj0_mean_representation*.npy")) or
                      glob.glob(os.path.join(out, "Results", "*traj0_representation*.npy")))
    found = latent()
    secs = run(cmd, out, os.path.join(out, "train.log"), env, done=found[-1] if found else None)
    found = latent()
    if not found:
        fail(f"the reference's {model} wrote no latent in {out}/Results", 1)
    return np.load(found[-1]), secs, reference_epoch_seconds(out, tr["epochs"])


def arguments(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", metavar="FILE:DATASET", help="the input trajectory (frames, features)")
    p.add_argument("--truth", required=True, metavar="FILE:DATASET", help="ground truth (frames, k)")
    p.add_argument("--config", help="dynae-mpi input file for all four models (default: the reference's defaults)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="more --set options for every run")
    p.add_argument("--epochs", type=int, help="train.epochs of every run (the budget)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    p.add_argument("--out", default="compare", help="folder of the runs and table.json")
    p.add_argument("--reference", metavar="DIR", help="the method authors' code, to run its four models too")
    p.add_argument("--msm-lag", type=int, default=100, help="lag of the Markov state models, frames")
    p.add_argument("--clusters", type=int, default=100, help="states of the Markov state models")
    p.add_argument("--timescales", type=int, default=2, help="implied timescales shown")
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--exe", default=os.path.join(here, "..", "build", "dynae-mpi"), help="dynae-mpi executable")
    p.add_argument("--mpiexec", default="mpiexec")
    p.add_argument("--python", default="/usr/bin/python3", help="python with torch, for --reference")
    a = p.parse_args(argv)
    a.models = [m for m in a.models.split(",") if m]
    if not a.models or any(m not in MODELS for m in a.models):
        p.error("--models: choose among " + ", ".join(MODELS))
    if a.reference and not os.path.isfile(os.path.join(a.reference, "main.py")):
        p.error(f"--reference {a.reference}: no main.py there")
    if min(a.ranks, a.msm_lag, a.clusters, a.timescales) < 1 or (a.epochs is not None and a.epochs < 1):
        p.error("--ranks, --epochs, --msm-lag, --clusters and --timescales must be >= 1")
    return a


def fmt_row(name, s):
    ts = "  ".join(f"{t:9.0f}" for t in s["timescales"])
    r2 = f"{s['r2']:7.4f}  {s['r2_worst']:7.4f}" if "r2" in s else " " * 16
    iso = f"{s['sv_ratio']:9.3f}  {s['distance_spread']:9.3f}" if "sv_ratio" in s else " " * 20
    secs = f"  {s['epoch_seconds']:8.2f}  {s['seconds']:8.1f}" if "seconds" in s else ""
    return f"{name:<22} {r2}  {iso}  {ts}{secs}"


def main(argv=None):
    a = arguments(argv)
    a.out = os.path.abspath(a.out)
    os.makedirs(a.out, exist_ok=True)
    dpath, dname, x, images = load_data(a.data)
    try:
        tpath, tname = evaluate.split_ref(a.truth)
        truth, _ = evaluate.read_2d(tpath, tname)
    except evaluate.InputError as e:
        fail(str(e))
    if len(x) != len(truth):
        fail(f"{a.data} has {len(x)} frames but {a.truth} has {len(truth)}")
    if images and a.reference:
        fail(f"--reference: {a.data} holds images; the reference's models are run on (frames, features) data only")
    config = a.config and os.path.abspath(a.config)
    extra = {"dynamicsae": CONV_DYNAMICSAE_SETS} if images and not config else {}
    if not config:
        config = os.path.join(a.out, "compare.toml")
        with open(config, "w") as fp:
            fp.write(default_config(os.path.abspath(dpath) + ":" + dname, CONV_NETS if images else MLP_NETS,
                                    *(CONV_SETTINGS if images else MLP_SETTINGS)))
    else:
        a.set = [f'data.input=["{os.path.abspath(dpath)}:{dname}"]'] + (a.set or [])
    npy = None
    if a.reference:
        npy = os.path.join(a.out, "input.npy")
        np.save(npy, x.astype(np.float32))
    rows = {}
    truth_row = {"timescales": implied_timescales(truth, a)}
    for model in a.models:
        z, secs, per_epoch, eff = run_dynae(model, a, config, extra.get(model, ()))
        rows[f"dynae-mpi {model}"] = dict(score(z, truth, a), seconds=secs, epoch_seconds=per_epoch)
        print(fmt_row(f"dynae-mpi {model}", rows[f"dynae-mpi {model}"]), file=sys.stderr, flush=True)
        if a.reference:
            zr, secs, per_epoch = run_reference(model, a, eff, npy)
            # the reference drops the last frame (it has no successor)
            rows[f"reference {model}"] = dict(score(zr, truth[:len(zr)], a), seconds=secs, epoch_seconds=per_epoch)
            print(fmt_row(f"reference {model}", rows[f"reference {model}"]), file=sys.stderr, flush=True)
    head = f"{'model':<22} {'R^2':>7}  {'worst':>7}  {'isometry':>9}  {'distances':>9}  " + "  ".join(
        f"{'t' + str(i + 1):>9}" for i in range(a.timescales)) + f"  {'s/epoch':>8}  {'wall s':>8}"
    print(f"# {a.data}, truth {a.truth}; seed {a.seed}, {a.ranks} rank(s); R^2 of the truth from the latent "
          f"(overall, worst column), isometry = singular-value ratio of that affine map, distances = spread of "
          f"latent over true distances (p90/p10, pairs at least 10% of the truth's extent apart; see evaluate.py; "
          f"1 is ideal for both), implied timescales in frames "
          f"(MSM of {a.clusters} states at lag {a.msm_lag}); seconds per epoch of training (each code's own "
          f"timing) and of the whole run")
    print(head)
    print(fmt_row("truth", truth_row))
    for name, r in rows.items():
        print(fmt_row(name, r))
    with open(os.path.join(a.out, "table.json"), "w") as fp:
        json.dump({"data": a.data, "truth": a.truth, "seed": a.seed, "ranks": a.ranks, "msm_lag": a.msm_lag,
                   "clusters": a.clusters, "truth_timescales": truth_row["timescales"], "rows": rows}, fp, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
