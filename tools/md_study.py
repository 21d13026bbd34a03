#!/usr/bin/python3
"""Side-by-side study: dynae-mpi and the reference PyTorch code on the same data, raw and
z-scored inputs, several seeds, every latent scored by the same code.

    md_study.py DATA.h5 --out results/md-study [--kind md|three-well] [--codes dynae,reference]
                [--models dynamicsae,tica,tica10,tica20] [--scalings raw,zscored] [--seeds 0,1,2]
                [--ranks 2] [--epochs 50] [--d-min 5]

DATA is a generator file: tools/gen_ala2.py / gen_ala4.py (`--kind md`, the default; features
/features/aligned_heavy, truth /truth/dihedrals, scored by tools/evaluate_md.py) or
tools/gen_three_well.py (`--kind three-well`; features /observed, truth /truth, scored by
tools/evaluate.py: affine-fit R^2 and the singular-value ratio, "isometry").

The tool writes the features once, as read ("raw") and with every feature shifted and scaled to
zero mean and unit variance over all frames ("zscored"), and, on request, shifted to zero mean
and divided by one common scale, the root mean square of the feature standard deviations, so
that the total variance is the feature count but the features keep their relative sizes
("global"), to OUT/features.h5 (for dynae-mpi) and OUT/<scaling>.npy (for the reference code,
which reads .npy). Then, for every code, scaling and
seed, one run in OUT/<code>-<scaling>-s<seed>/ with the same hyper-parameters: dynae-mpi's
defaults (encoder and decoder [32, 32, 32], beta 10, 50 projections, batch 256, lr 1e-3, lag 1,
test fraction 0.2) and the same in the reference's configuration file, `--d-min`, `--epochs` and
`--batch-size` for both. A run whose results exist is not repeated (delete its folder to redo it).

`--models` (dynae-mpi only; default dynamicsae) runs other models of the program on the same
features: `tica` is the linear baseline (model.type = "tica": the latent is the first
model.latent_dim = 2 TICs, nothing is trained), `tica<k>` is DynamicsAE whose encoder sees the
first k TICs (data.tica_dim = k). Runs of model m other than dynamicsae go to
OUT/dynae-<m>-<scaling>-s<seed>/. Wherever the program fitted a TICA (results.h5 /tica/), the
tool fits its own from the equations (tests/tica/check_tica.py's NumPy reference, on the same
features, lag and epsilon) and records the largest relative differences of the eigenvalues and
timescales (and of the latent for `tica`).

`--native` (once dynae-mpi reads molecular files itself) feeds dynae-mpi the positions instead:
data.input = DATA:/particles/all/position, data.atoms = the heavy atoms, data.features =
"aligned", and data.standardize = false / true for raw / zscored; the reference keeps the .npy.
Under --native, "zscored" is dynae-mpi's own standardisation, whose default is one common scale
(data.scale = "common", the transform of "global" above), not a per-feature z-score; add
`--set data.scale=feature` for the per-feature one the reference's "zscored" .npy holds.

For every run it records: the loss curves (reconstruction and sliced-Wasserstein, train, per
epoch; the reference's are its last logged values per epoch), the bins per epoch, the
eigenvalues of the latent's lag-1 step covariance, and the scores (md: also VAMP-2 of the latent
at lag 1 over all frames, and the program's own /history/vamp2_test on its test pairs). It prints one table row per
run and a summary per code and scaling (medians), and writes everything to OUT/study.json.
Exit codes: 0 done; 1 a run failed (the others are still reported); 2 bad arguments.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

try:
    import h5py
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.exit("md_study.py: h5py is missing; run it with /usr/bin/python3")

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
sys.path.insert(0, os.path.join(TOOLS, "..", "tests", "tica"))
import evaluate_md  # noqa: E402  (same folder)

TOOL = "md_study.py"
REFERENCE = "/work/shared/reference/DynamicsAE/main.py"
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1"}
# The reference code's configuration file (its examples/sample_config.ini); tools/compare_models.py
# fills it for the other models too.
REFERENCE_INI = """[Model Parameters]
d = [{d}]
encoder_type = fc_encoder
decoder_type = fc_decoder
neuron_num1 = [{n1}]
neuron_num2 = [{n2}]
model = {model}
projection_num = {L}
min_dist = {d_min}
bias_factor = {gamma}
prior_dynamics = Langevin
nu = {nu}
[Training Parameters]
batch_size = {batch}
max_epochs = {epochs}
lr_scheduler_step_size = 100
lr_scheduler_gamma = 1
log_interval = 10
learning_rate = [{lr}]
beta = [{beta}]
[Data]
input_data = [{npy}]
target_data = [{npy}]
[Other Controls]
seed = [{seed}]
SaveTrajResults = False
SaveTrainingProgress = False
"""
# md_study's runs: DynamicsAE with the reference's example settings
REFERENCE_DEFAULTS = dict(n1=32, n2=32, model="DynamicsAE", L=50, gamma=2, nu=0.0065, lr=1e-3, beta=10)


def fail(msg, code=2):
    print(f"{TOOL}: error: {msg}", file=sys.stderr)
    sys.exit(code)


def prepare(a):
    """Writes OUT/features.h5 (/raw, /zscored) and OUT/{raw,zscored}.npy; returns feature info."""
    with h5py.File(a.data, "r") as f:
        name = "features/aligned_heavy" if a.kind == "md" else "observed"
        if name not in f:
            fail(f"{a.data}: no dataset /{name} (is it a {a.kind} generator file?)")
        x = np.asarray(f[name], dtype=np.float64)
        frames = int(f.attrs.get("frames", len(x)))
        x = x[:frames]
        heavy = np.asarray(f["truth/heavy_atoms"]) if a.kind == "md" else None
    mean, std = x.mean(axis=0), x.std(axis=0)
    if np.any(std == 0):
        fail(f"{a.data}:/{name}: constant features {np.flatnonzero(std == 0).tolist()}")
    feats = {"raw": x, "zscored": (x - mean) / std,
             "global": (x - mean) / np.sqrt(np.mean(std ** 2))}
    path = os.path.join(a.out, "features.h5")
    have = []
    if os.path.exists(path):
        with h5py.File(path, "r") as g:
            have = list(g)
    if not set(feats) <= set(have):
        with h5py.File(path + ".part", "w") as g:
            for k, v in feats.items():
                g.create_dataset(k, data=v.astype(np.float32))
            g.attrs["source"] = os.path.abspath(a.data)
        os.replace(path + ".part", path)
    for k, v in feats.items():
        p = os.path.join(a.out, f"{k}.npy")
        if not os.path.exists(p):
            np.save(p, v.astype(np.float32))
    return dict(frames=frames, features=x.shape[1], std_min=float(std.min()), std_max=float(std.max()),
                std=[float(s) for s in std], heavy=heavy)


def run_logged(cmd, cwd, log, env=None):
    e = dict(os.environ)
    e.update(env or {})
    with open(log, "w") as f:
        p = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=e)
    return p.returncode


def model_config(model):
    """The [data] lines and [model] section of one --models entry."""
    if model == "tica":
        return "", '[model]\ntype = "tica"\n'
    if model.startswith("tica"):
        return f"tica_dim = {int(model[4:])}\n", ""
    return "", ""


def tica_check(a, res, scaling, model, z):
    """The program's /tica/ against a NumPy TICA from the equations on the same features."""
    import check_tica  # tests/tica: the reference written from SPEC section 10's equations
    with h5py.File(res, "r") as f:
        if "tica" not in f:
            return None
        g = f["tica"]
        got = dict(eigenvalues=np.asarray(g["eigenvalues"], dtype=np.float64),
                   timescales=np.asarray(g["timescales"], dtype=np.float64))
        at = g.attrs if "lag" in g.attrs else g["eigenvectors"].attrs
        lag, eps, kept = int(at["lag"]), float(at["epsilon"]), int(at["kept"])
    with h5py.File(os.path.join(a.out, "features.h5"), "r") as f:
        x = np.asarray(f[scaling], dtype=np.float64)  # what the program read (float32)
    k = len(got["eigenvalues"])
    ref = check_tica.reference([x], lag, eps, k, "kinetic_map")
    out = dict(lag=lag, k=k, kept=kept, kept_reference=ref["kept"],
               timescales=[float(v) for v in got["timescales"]])
    for key in ("eigenvalues", "timescales"):
        out[f"{key}_rel_err"] = float(np.max(np.abs(got[key] - ref[key]) / np.abs(ref[key])))
    if model == "tica":
        col = np.max(np.abs(ref["latent"][0]), axis=0)
        out["latent_rel_err"] = float(np.max(np.abs(z[0] - ref["latent"][0]) / col))
    return out


def run_dynae(a, rd, scaling, seed, model="dynamicsae"):
    toml = os.path.abspath(os.path.join(rd, "input.toml"))
    if a.native:
        atoms = ", ".join(str(i) for i in a.info["heavy"])
        data = (f'input = ["{os.path.abspath(a.data)}:/particles/all/position"]\natoms = [{atoms}]\n'
                f'features = "aligned"\nstandardize = {"true" if scaling == "zscored" else "false"}\n')
    else:
        data = f'input = ["{os.path.abspath(os.path.join(a.out, "features.h5"))}:/{scaling}"]\n'
    data_extra, model_section = model_config(model)
    with open(toml, "w") as f:
        f.write(f"# written by {TOOL}\n[data]\n{data}{data_extra}{model_section}[cluster]\nd_min = {a.d_min}\n"
                f"[train]\nepochs = {a.epochs}\nseed = {seed}\nbatch_size = {a.batch_size}\n"
                f'[output]\ndir = "out"\ncheckpoint_every = {a.epochs}\nsave_reconstruction = false\n')
    cmd = ["nice", "-n", "10", a.mpiexec, "-n", str(a.ranks), os.path.abspath(a.program), toml, "--quiet"]
    for s in a.set:
        cmd += ["--set", s]
    rc = run_logged(cmd, rd, os.path.join(rd, "run.log"), MPI_ENV)
    res = os.path.join(rd, "out", "results.h5")
    if rc != 0 or not os.path.exists(res):
        return None, dict(exit=rc)
    with h5py.File(res, "r") as f:
        z = [np.asarray(f["latent"][k], dtype=np.float64) for k in sorted(f["latent"], key=lambda k: int(k[4:]))]
        hist = dict(bins=[], rec=[], sw=[])  # model.type = "tica" trains nothing and has no history
        if "history" in f:
            h = f["history"]
            hist = dict(bins=[int(v) for v in h["bins"]], rec=[float(v) for v in h["loss_rec_train"]],
                        sw=[float(v) for v in h["loss_sw_train"]], seconds=float(np.sum(h["seconds"])))
            if "vamp2_test" in h:
                hist["vamp2_test"] = [float(v) for v in h["vamp2_test"]]
    if not a.native:
        hist["tica"] = tica_check(a, res, scaling, model, z)
    return z, hist


def run_reference(a, rd, scaling, seed):
    npy = os.path.abspath(os.path.join(a.out, f"{scaling}.npy"))
    ini = os.path.abspath(os.path.join(rd, "config.ini"))
    with open(ini, "w") as f:
        f.write(REFERENCE_INI.format(d=2, d_min=a.d_min, epochs=a.epochs, npy=npy, seed=seed, batch=a.batch_size,
                                     **REFERENCE_DEFAULTS))
    t0 = time.time()
    rc = run_logged(["nice", "-n", "10", sys.executable, a.reference, "-config", ini], rd,
                    os.path.join(rd, "run.log"), {"OMP_NUM_THREADS": "1"})
    seconds = time.time() - t0
    lat = glob.glob(os.path.join(rd, "Results", f"*_traj0_representation{seed}.npy"))
    logs = glob.glob(os.path.join(rd, "Results", "*_train.log"))
    hist = dict(exit=rc, seconds=seconds, bins=[], rec=[], sw=[])
    if logs:
        rec = sw = None
        for line in open(logs[0]):
            m = re.match(r"(\d+) cluster centers detected", line)
            if m:
                hist["bins"].append(int(m.group(1)))
            m = re.search(r"Loss \(train\) \S+\tRegularization loss \(train\): (\S+)", line)
            if m:
                sw = float(m.group(1))
            m = re.search(r"Reconstruction loss \(train\) (\S+)", line)
            if m:
                rec = float(m.group(1))
            if line.startswith("Epoch:"):
                hist["rec"].append(rec)
                hist["sw"].append(sw)
    # Aligned with dynae-mpi's /history/bins: epoch 0 (warm-up) has no bins, epoch e >= 1 the
    # centres of the clustering before it; the last count printed is the final evaluation's.
    hist["bins"] = [0] + hist["bins"][:max(0, a.epochs - 1)]
    if rc != 0 or not lat:
        return None, hist
    return [np.asarray(np.load(lat[0]), dtype=np.float64)], hist


def score(a, z):
    """Scores of one latent (list of per-trajectory arrays)."""
    ev = evaluate_md.step_covariance(z)
    out = dict(step_cov=[float(v) for v in ev], collapse_ratio=float(ev[0] / ev[-1]) if ev[-1] > 0 else 0.0)
    out["collapsed"] = out["collapse_ratio"] < 0.05
    if a.kind == "md":
        ns = argparse.Namespace(knn_k=10, folds=5, states=a.states, msm_lag=a.msm_lag, seed=0, its=3,
                                collapse_ratio=0.05, frame_ps=None)
        r = evaluate_md.evaluate(z, [a.truth], a.frame_ps, ns)
        out.update(knn_r2=r["knn"]["r2"], its=r["msm"]["its_latent"][0], its_truth=r["msm"]["its_truth"][0],
                   vamp2=evaluate_md.vamp2(z, 1))
    else:
        tmp = os.path.join(a.out, "latent-tmp.h5")
        with h5py.File(tmp, "w") as f:
            f.create_dataset("latent/traj0", data=z[0])
        p = subprocess.run([sys.executable, os.path.join(TOOLS, "evaluate.py"), tmp, f"{a.data}:/truth", "--json"],
                           capture_output=True, text=True)
        os.remove(tmp)
        if p.returncode != 0:
            return dict(out, error=p.stderr.strip())
        r = json.loads(p.stdout)
        out.update(r2=r["r2_truth_from_latent"], r2_worst=r["r2_worst"], isometry=r["sv_ratio"],
                   scale=r["scale_latent_per_truth"])
    ext = np.concatenate(z)
    out["latent_std"] = [float(v) for v in ext.std(axis=0)]
    return out


def fmt_row(r):
    s = r.get("score", {})
    bins = r.get("history", {}).get("bins", [])
    last = r.get("history", {})
    b = f"{bins[1] if len(bins) > 1 else '-'}..{bins[-1] if bins else '-'}"
    tail = f"rec {last['rec'][-1]:.3g} sw {last['sw'][-1]:.3g}" if last.get("rec") and last["rec"][-1] is not None else ""
    if "error" in r:
        return f"| {r['code']} | {r['scaling']} | {r['seed']} | failed: {r['error']} |"
    if "knn_r2" in s:
        return (f"| {r['code']} | {r['scaling']} | {r['seed']} | {s['knn_r2']:.3f} | {s['its']:.0f} / {s['its_truth']:.0f} "
                f"| {s.get('vamp2', float('nan')):.3f} "
                f"| {s['collapse_ratio']:.3f}{' COLLAPSED' if s['collapsed'] else ''} | {b} | {tail} |")
    return (f"| {r['code']} | {r['scaling']} | {r['seed']} | {s['r2']:.4f} | {s['r2_worst']:.4f} | {s['isometry']:.3f} "
            f"| {s['scale']:.2f} | {s['collapse_ratio']:.3f} | {b} | {tail} |")


def print_curves(rows, a):
    """Median over seeds of the train losses and bins at a few epochs, per code and scaling."""
    marks = sorted({e for e in (1, 2, 5, 10, 25, a.epochs - 1) if 0 < e < a.epochs})
    print("train losses at the end of epochs " + ", ".join(map(str, marks))
          + " (median over seeds: rec/sw/bins; the reference logs its losses every 500 steps, "
          "the last logged value is shown)")
    for code in a.variants:
        for scaling in a.scalings:
            hs = [r["history"] for r in rows if r["code"] == code and r["scaling"] == scaling and "score" in r]
            cells = []
            for e in marks:
                parts = []
                for key, f in (("rec", "6.3g"), ("sw", "5.3g"), ("bins", "3.0f")):
                    v = [h[key][e] for h in hs if len(h[key]) > e and h[key][e] is not None]
                    parts.append(format(float(np.median(v)), f) if v else "-")
                cells.append(f"{'/'.join(parts):>17}")
            print(f"{code + '-' + scaling:>18}: " + " ".join(cells))


def main(argv=None):
    ap = argparse.ArgumentParser(prog=TOOL, description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="generator file (gen_ala2.py, gen_ala4.py or gen_three_well.py)")
    ap.add_argument("--out", required=True, help="study folder (created; runs found there are reused)")
    ap.add_argument("--kind", choices=["md", "three-well"], default="md")
    ap.add_argument("--codes", default="dynae,reference", help="dynae, reference or both (default both)")
    ap.add_argument("--models", default="dynamicsae",
                    help="dynae-mpi models: dynamicsae, tica (TICA-2), tica<k> (DynamicsAE on k TICs); "
                         "default dynamicsae")
    ap.add_argument("--scalings", default="raw,zscored")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--ranks", type=int, default=2, help="dynae-mpi ranks (default 2)")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--d-min", type=float, default=5.0, help="cluster.d_min / min_dist of both codes (default 5)")
    ap.add_argument("--batch-size", type=int, default=256, help="batch size of both codes (default 256; "
                    "dynae-mpi's is the step's over all ranks with its default train.batch = \"global\")")
    ap.add_argument("--states", type=int, default=100, help="Markov-model states (md; default 100)")
    ap.add_argument("--msm-lag", type=int, default=10, help="Markov-model lag in frames (md; default 10)")
    ap.add_argument("--set", action="append", default=[], help="extra dynae-mpi --set (repeatable)")
    ap.add_argument("--native", action="store_true",
                    help="dynae-mpi reads the positions itself (data.atoms, features, standardize)")
    ap.add_argument("--program", default=os.path.join(TOOLS, "..", "build", "dynae-mpi"))
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--reference", default=REFERENCE, help="the reference code's main.py")
    a = ap.parse_args(argv)
    try:
        a.seeds = [int(s) for s in a.seeds.split(",")]
    except ValueError:
        fail(f"--seeds {a.seeds}: expected integers joined by commas")
    a.codes = a.codes.split(",")
    a.scalings = a.scalings.split(",")
    a.models = a.models.split(",")
    if not set(a.codes) <= {"dynae", "reference"} or not set(a.scalings) <= {"raw", "zscored", "global"}:
        fail("--codes takes dynae,reference and --scalings raw,zscored,global")
    if not all(re.fullmatch(r"dynamicsae|tica|tica[1-9][0-9]*", m) for m in a.models):
        fail(f"--models {','.join(a.models)}: expected dynamicsae, tica or tica<k> (k >= 1) joined by commas")
    if a.native and a.models != ["dynamicsae"]:
        fail("--native runs DynamicsAE only (--models dynamicsae)")
    # One label per run family: the reference, and dynae-mpi once per model ("dynae" for
    # DynamicsAE, as before --models existed).
    a.variants = [v for c in a.codes for v in
                  (["reference"] if c == "reference" else
                   ["dynae" if m == "dynamicsae" else f"dynae-{m}" for m in a.models])]
    if a.native and "global" in a.scalings:
        fail("--native has no global scaling (data.standardize is per feature)")
    if a.native and a.kind != "md":
        fail("--native applies to molecular data only")
    if not os.path.exists(a.data):
        fail(f"{a.data}: no such file")
    if "dynae" in a.codes and not os.access(a.program, os.X_OK):
        fail(f"{a.program}: not an executable (build dynae-mpi first, or --program)")
    if "reference" in a.codes and not os.path.exists(a.reference):
        fail(f"{a.reference}: no such file (--reference)")
    os.makedirs(a.out, exist_ok=True)
    a.info = prepare(a)
    if a.kind == "md":
        a.truth, a.frame_ps, _ = evaluate_md.read_truth(a.data)
        a.truth = a.truth[:a.info["frames"]]
    print(f"{a.data}: {a.info['frames']} frames, {a.info['features']} features, "
          f"std {a.info['std_min']:.4g} to {a.info['std_max']:.4g}", flush=True)

    rows, failed = [], False
    for code in a.variants:
        for scaling in a.scalings:
            for seed in a.seeds:
                rd = os.path.join(a.out, f"{code}-{scaling}-s{seed}")
                os.makedirs(rd, exist_ok=True)
                done = os.path.join(rd, "run.json")
                if os.path.exists(done):
                    r = json.load(open(done))
                elif code == "reference":
                    z, hist = run_reference(a, rd, scaling, seed)
                else:
                    z, hist = run_dynae(a, rd, scaling, seed, code[6:] or "dynamicsae")
                if not os.path.exists(done):
                    r = dict(code=code, scaling=scaling, seed=seed, history=hist)
                    if z is None:
                        r["error"] = f"exit {hist.get('exit')}, see {rd}/run.log"
                    else:
                        r["score"] = score(a, z)
                        json.dump(r, open(done, "w"), indent=1)
                failed |= "error" in r
                rows.append(r)
                print(fmt_row(r), flush=True)
    summary = {}
    for code in a.variants:
        for scaling in a.scalings:
            ok = [r["score"] for r in rows if r["code"] == code and r["scaling"] == scaling and "score" in r]
            keys = ["knn_r2", "its", "vamp2", "collapse_ratio"] if a.kind == "md" else ["r2", "r2_worst", "isometry", "collapse_ratio"]
            summary[f"{code}-{scaling}"] = {k: float(np.median([s[k] for s in ok])) for k in keys} if ok else {}
            if ok:
                summary[f"{code}-{scaling}"]["collapsed"] = sum(s["collapsed"] for s in ok)
                summary[f"{code}-{scaling}"]["runs"] = len(ok)
    for k, v in summary.items():
        print(f"median {k}: " + ", ".join(f"{kk} {vv:.4g}" for kk, vv in v.items()))
    checks = [(r["code"], r["scaling"], r["seed"], r["history"]["tica"]) for r in rows
              if "score" in r and r.get("history", {}).get("tica")]
    for code, scaling, seed, t in checks:
        print(f"TICA of {code}-{scaling}-s{seed} against NumPy (k {t['k']}, lag {t['lag']}, kept {t['kept']}/"
              f"{t['kept_reference']}): eigenvalues {t['eigenvalues_rel_err']:.2e}, timescales "
              f"{t['timescales_rel_err']:.2e}" + (f", latent {t['latent_rel_err']:.2e}" if "latent_rel_err" in t else "")
              + " relative; TIC timescales " + ", ".join(f"{v:.1f}" for v in t["timescales"][:3]) + " frames")
    print_curves(rows, a)
    json.dump(dict(data=os.path.abspath(a.data), kind=a.kind, d_min=a.d_min, epochs=a.epochs, ranks=a.ranks,
                   features=a.info["features"], feature_std=a.info["std"], rows=rows, summary=summary),
              open(os.path.join(a.out, "study.json"), "w"), indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
