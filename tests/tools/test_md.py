"""Tests of the molecular tools: gen_ala2.py / gen_ala4.py (layout, truth checked against MDTraj,
reproducibility, bad arguments) and evaluate_md.py (synthetic latents with known answers, the
collapse flag, the failing checks, bad input)."""
import json
import os
import sys

import h5py
import numpy as np

from tooltest import check, main, run

SHORT = ["--frames", "300", "--frame-ps", "0.02", "--equilibrate-ps", "0.2", "--quiet"]


def generate(tmp, tool="gen_ala2.py", name="a.h5", *extra):
    out = os.path.join(tmp, name)
    run(tool, "--out", out, *SHORT, *extra)
    return out


def check_layout(path, atoms, heavy, angles):
    import mdtraj  # independent of the generator's own geometry code
    with h5py.File(path, "r") as f:
        check(f["h5md"].attrs["version"].tolist() == [1, 1], "H5MD version attribute")
        pos = f["particles/all/position/value"]
        check(pos.shape == (300, atoms, 3) and pos.dtype == np.float32, f"position/value {pos.shape} {pos.dtype}")
        x = np.asarray(pos, dtype=np.float64)
        step, t = np.asarray(f["particles/all/position/step"]), np.asarray(f["particles/all/position/time"])
        check(np.array_equal(step, np.arange(300) * 5) and np.allclose(t, np.arange(300) * 0.02),
              "step/time: 5 steps of 4 fs per 0.02 ps frame")
        names = [n.decode() for n in f["parameters/atom_names"]]
        species = np.asarray(f["particles/all/species"])
        hv = np.asarray(f["truth/heavy_atoms"])
        check(hv.tolist() == [i for i, n in enumerate(names) if not n.startswith("H")] and len(hv) == heavy,
              f"heavy atoms {hv.tolist()}")
        check(np.all(species[hv] > 1) and np.all(np.delete(species, hv) == 1), "species vs heavy atoms")
        quads = np.asarray(f["truth/dihedral_atoms"])
        dih = np.asarray(f["truth/dihedrals"])
        check(dih.shape == (300, angles) and quads.shape == (angles, 4), f"dihedrals {dih.shape}")
        al = np.asarray(f["features/aligned_heavy"], dtype=np.float64).reshape(300, heavy, 3)
        check(int(f.attrs["frames"]) == 300, "frames attribute")
    # The truth against MDTraj's dihedrals of the stored positions (float32: 1e-4 rad).
    traj = mdtraj.Trajectory(x, None)
    ref = mdtraj.compute_dihedrals(traj, quads)
    err = np.abs(np.angle(np.exp(1j * (dih - ref)))).max()
    check(err < 1e-4, f"dihedrals differ from MDTraj's by {err}")
    # phi = C-N-CA-C, psi = N-CA-C-N by the atom names.
    for k in range(angles):
        want = ["C", "N", "CA", "C"] if k % 2 == 0 else ["N", "CA", "C", "N"]
        check([names[i] for i in quads[k]] == want, f"dihedral {k} atoms {[names[i] for i in quads[k]]}")
    # L-alanine everywhere: CB on the side that makes the improper N-C-CA-CB about +122 degrees.
    ca = [i for i, n in enumerate(names) if n == "CA"]
    for c in ca:
        n_, c_, cb = c - 2, c + 6, c + 2
        check(names[n_] == "N" and names[c_] == "C" and names[cb] == "CB", "ALA atom order")
        imp = np.degrees(mdtraj.compute_dihedrals(traj, [[n_, c_, c, cb]]))
        check(np.all((imp > 100) & (imp < 145)), f"chirality at atom {c}: {imp.min():.1f}..{imp.max():.1f}")
    # Aligned features: optimal superposition onto frame 0 (MDTraj's RMSD), centred on its centroid.
    rmsd = mdtraj.rmsd(mdtraj.Trajectory(x[:, hv], None), mdtraj.Trajectory(x[:1, hv], None), 0)
    mine = np.sqrt(((al - x[0, hv]) ** 2).sum(axis=2).mean(axis=1))
    check(np.abs(rmsd - mine).max() < 2e-5, f"aligned RMSD differs from MDTraj's by {np.abs(rmsd - mine).max()}")
    check(np.allclose(al.mean(axis=1), x[0, hv].mean(axis=0), atol=1e-5), "aligned centroid = frame 0's")
    # Bonded geometry stays sane: every atom has a neighbour within 0.09-0.16 nm in every frame.
    d = np.linalg.norm(x[:, :, None] - x[:, None], axis=-1) + np.eye(atoms) * 9
    check(np.all((d.min(axis=2) > 0.09) & (d.min(axis=2) < 0.16)), "nearest-neighbour distances")


def t_ala2_layout(tmp):
    check_layout(generate(tmp), 22, 10, 2)


def t_ala4_layout(tmp):
    check_layout(generate(tmp, "gen_ala4.py"), 42, 20, 6)


def t_ala2_reproducible(tmp):
    a, b = generate(tmp, name="a.h5"), generate(tmp, name="b.h5")
    c = generate(tmp, "gen_ala2.py", "c.h5", "--seed", "2")
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb, h5py.File(c, "r") as fc:
        pa = np.asarray(fa["particles/all/position/value"])
        check(np.array_equal(pa, fb["particles/all/position/value"]), "same seed, different positions")
        check(not np.array_equal(pa, fc["particles/all/position/value"]), "another seed, same positions")


def t_ala2_args(tmp):
    out = os.path.join(tmp, "x.h5")
    for bad in (["--frames", "1"], ["--seed", "0"], ["--frame-ps", "0.01"], ["--dt-fs", "-1"],
                ["--forcefield", "nope"]):
        run("gen_ala2.py", "--out", out, *bad, expect=2)
    run("gen_ala2.py", "--out", os.path.join(tmp, "no", "such", "x.h5"), "--frames", "2", expect=2)
    check(not os.path.exists(out), "a refused run wrote its file")


# ------------------------------------------------------------------------------ evaluate_md
def two_state(n, p, seed):
    """Symmetric two-state chain (switch probability p per frame) seen through two angles:
    phi near -1.5 or +1.0 rad by state plus noise, psi pure noise. Slowest ITS: -1/ln(1-2p)."""
    rng = np.random.default_rng(seed)
    flips = rng.random(n) < p
    s = np.cumsum(flips) % 2
    phi = np.where(s == 0, -1.5, 1.0) + 0.2 * rng.standard_normal(n)
    psi = 2.0 + 0.3 * rng.standard_normal(n)
    return np.stack([phi, psi], axis=1)


def write_truth(tmp, angles, name="truth.h5", frame_ps=1.0):
    p = os.path.join(tmp, name)
    with h5py.File(p, "w") as f:
        f.create_dataset("truth/dihedrals", data=angles)
        f.attrs["frame_ps"] = frame_ps
    return p


def evaluate(tmp, latent, truth, *extra, expect=0):
    lp = os.path.join(tmp, "latent.npy")
    np.save(lp, latent)
    out = run("evaluate_md.py", lp, truth, "--json", "--states", "10", *extra, expect=expect)
    return json.loads(out)


def t_evaluate_known(tmp):
    ang = two_state(60000, 0.01, 1)
    truth = write_truth(tmp, ang, frame_ps=2.0)
    feats = np.concatenate([np.cos(ang), np.sin(ang)], axis=1)
    # The truth's own features as the latent: the same Markov model, so the same timescales.
    r = evaluate(tmp, feats, truth)
    want = -1.0 / np.log(1 - 2 * 0.01) * 2.0  # ps
    its_t, its_z = r["msm"]["its_truth"][0], r["msm"]["its_latent"][0]
    check(abs(its_t / want - 1) < 0.1, f"two-state ITS {its_t} ps, expected {want:.1f}")
    check(abs(its_z / its_t - 1) < 1e-9 and r["msm"]["its_ratio"] == its_z / its_t, "identical latent, other ITS")
    check(r["frame_ps"] == 2.0 and r["msm"]["unit"] == "ps", "frame_ps from the data")
    # kNN R^2 of an exact copy is the R^2 of the noise-limited neighbours: near 1.
    check(r["knn"]["r2"] > 0.97, f"kNN R^2 of the truth itself {r['knn']['r2']}")
    # A latent carrying only the state: phi's state variance is recovered, psi's noise is not.
    s = (ang[:, :1] > -0.25).astype(float)
    rng = np.random.default_rng(2)
    r = evaluate(tmp, np.concatenate([s * 10, rng.standard_normal((len(s), 1))], axis=1), truth)
    # (the mean of k unrelated frames has R^2 = -1/k on a pure-noise target)
    check(0.3 < r["knn"]["r2_per_angle"][0] < 0.99 and -0.2 < r["knn"]["r2_per_angle"][1] < 0.05,
          f"state-only latent: per-angle R^2 {r['knn']['r2_per_angle']}")
    check(abs(r["msm"]["its_latent"][0] / want - 1) < 0.15, "state-only latent keeps the slow process")
    # Random latent: no information, R^2 about 0 or below, fast timescales only, isotropic steps.
    r = evaluate(tmp, rng.standard_normal((len(s), 2)), truth)
    check(r["knn"]["r2"] < 0.02 and r["msm"]["its_ratio"] < 0.1, f"random latent {r['knn']['r2']}")
    check(not r["collapse"]["collapsed"] and r["collapse"]["ratio"] > 0.9, "random steps are isotropic")


def t_evaluate_collapse(tmp):
    ang = two_state(20000, 0.01, 3)
    truth = write_truth(tmp, ang)
    rng = np.random.default_rng(4)
    # Steps of covariance diag(1, 0.03^2): ratio 9e-4, collapsed.
    walk = np.cumsum(rng.standard_normal((20000, 2)) * [1.0, 0.03], axis=0)
    r = evaluate(tmp, walk, truth)
    c = r["collapse"]
    check(c["collapsed"] and abs(c["ratio"] / 9e-4 - 1) < 0.1, f"collapse ratio {c['ratio']}")
    check(abs(c["step_cov_eigenvalues"][1] - 1) < 0.05, f"largest step variance {c['step_cov_eigenvalues']}")
    # Steps of covariance diag(1, 0.3^2): ratio 0.09, not collapsed; a rotation changes nothing.
    walk = np.cumsum(rng.standard_normal((20000, 2)) * [1.0, 0.3], axis=0)
    rot = np.array([[0.6, 0.8], [-0.8, 0.6]])
    r = evaluate(tmp, walk @ rot, truth)
    check(not r["collapse"]["collapsed"] and abs(r["collapse"]["ratio"] / 0.09 - 1) < 0.1,
          f"rotated anisotropic walk {r['collapse']['ratio']}")


def t_evaluate_fails(tmp):
    """The checks exit 1 when they fail, 0 when they pass."""
    ang = two_state(20000, 0.01, 5)
    truth = write_truth(tmp, ang)
    rng = np.random.default_rng(6)
    noise = rng.standard_normal((20000, 2))
    r = evaluate(tmp, noise, truth, "--min-r2", "0.5", expect=1)
    check(any("kNN R^2" in m for m in r["failed_checks"]), "the failed check is named")
    evaluate(tmp, noise, truth, "--max-its-error", "0.4", expect=1)
    evaluate(tmp, np.cumsum(noise * [1, 0.01], axis=0), truth, "--fail-collapsed", expect=1)
    evaluate(tmp, ang * 3, truth, "--min-r2", "0.9", "--max-its-error", "0.15", "--fail-collapsed", expect=0)


def t_evaluate_results_file(tmp):
    """A dynae-mpi results file with two trajectories against two generator-style files."""
    a, b = two_state(5000, 0.02, 7), two_state(6000, 0.02, 8)
    ta, tb = write_truth(tmp, a, "a.h5"), write_truth(tmp, b, "b.h5")
    res = os.path.join(tmp, "results.h5")
    with h5py.File(res, "w") as f:
        f.create_dataset("latent/traj0", data=a * 3)
        f.create_dataset("latent/traj1", data=b * 3)
    r = json.loads(run("evaluate_md.py", res, ta, tb, "--json", "--states", "10"))
    check(r["frames"] == 11000 and r["trajectories"] == 2 and r["knn"]["r2"] > 0.95, f"two trajectories {r['knn']}")
    text = run("evaluate_md.py", res, ta, tb, "--states", "10")
    check("kNN R^2" in text and "slowest latent / truth" in text and "not collapsed" in text, "text report")


def t_evaluate_bad_input(tmp):
    ang = two_state(3000, 0.02, 9)
    truth = write_truth(tmp, ang)
    lp = os.path.join(tmp, "z.npy")
    np.save(lp, ang[:2999])
    run("evaluate_md.py", lp, truth, expect=2)  # frame counts differ
    np.save(lp, ang[:, 0])
    run("evaluate_md.py", lp, truth, expect=2)  # 1-D latent
    np.save(lp, ang)
    run("evaluate_md.py", lp, truth + ":/nope", expect=2)  # no such dataset
    run("evaluate_md.py", lp, os.path.join(tmp, "missing.h5"), expect=2)
    run("evaluate_md.py", lp, truth, truth, expect=2)  # two truths, one latent
    run("evaluate_md.py", lp, truth, "--folds", "1", expect=2)
    res = os.path.join(tmp, "r.h5")
    with h5py.File(res, "w") as f:
        f.create_dataset("other", data=ang)
    run("evaluate_md.py", res, truth, expect=2)  # not a results file
    bad = ang.copy()
    bad[5, 0] = np.nan
    np.save(lp, bad)
    run("evaluate_md.py", lp, truth, expect=2)  # non-finite latent


# ------------------------------------------------------------------------------ md_study
def t_study_dynae(tmp):
    """A tiny study end to end with dynae-mpi (program and mpiexec from the environment)."""
    data = generate(tmp)
    out = os.path.join(tmp, "study")
    text = run("md_study.py", data, "--out", out, "--codes", "dynae", "--scalings", "raw,zscored,global",
               "--seeds", "0", "--ranks", "1", "--epochs", "3", "--d-min", "1", "--states", "10",
               "--set", "train.batch_size=32", "--program", os.environ["DY_PROGRAM"],
               "--mpiexec", os.environ["DY_MPIEXEC"])
    r = json.load(open(os.path.join(out, "study.json")))
    check(len(r["rows"]) == 3 and all("score" in row for row in r["rows"]), "three scored runs")
    for row in r["rows"]:
        check(len(row["history"]["bins"]) == 3 and len(row["score"]["step_cov"]) == 2, "history and step covariance")
    with h5py.File(os.path.join(out, "features.h5"), "r") as f:
        z, g, raw = (np.asarray(f[k], dtype=np.float64) for k in ("zscored", "global", "raw"))
    check(np.allclose(z.std(axis=0), 1, atol=1e-4) and np.allclose(z.mean(axis=0), 0, atol=1e-4), "z-scored")
    ratio = g.std(axis=0) / raw.std(axis=0)
    check(np.allclose(ratio, ratio[0], rtol=1e-4) and abs((g ** 2).mean(axis=0).sum() / 30 - 1) < 1e-3,
          "global: one scale, total variance = features")
    check("median dynae-global" in text and "rec/sw/bins" in text, "summary and curves printed")
    again = run("md_study.py", data, "--out", out, "--codes", "dynae", "--scalings", "raw", "--seeds", "0",
                "--epochs", "3", "--program", "/nonexistent/dynae-mpi", expect=2)
    del again
    run("md_study.py", data, "--out", out, "--codes", "dynae", "--scalings", "raw", "--seeds", "0",
        "--ranks", "1", "--epochs", "3", "--d-min", "1", "--states", "10",
        "--program", os.environ["DY_PROGRAM"], "--mpiexec", "/nonexistent/mpiexec")  # reused, not rerun


def t_study_models(tmp):
    """--models: the TICA baseline and DynamicsAE on TICs next to plain DynamicsAE, the program's
    TICA checked against the NumPy reference, VAMP-2 scored for every run."""
    data = generate(tmp)
    out = os.path.join(tmp, "study")
    text = run("md_study.py", data, "--out", out, "--codes", "dynae", "--models", "dynamicsae,tica,tica4",
               "--scalings", "raw", "--seeds", "0", "--ranks", "1", "--epochs", "2", "--d-min", "1",
               "--states", "10", "--set", "train.batch_size=32", "--program", os.environ["DY_PROGRAM"],
               "--mpiexec", os.environ["DY_MPIEXEC"])
    r = json.load(open(os.path.join(out, "study.json")))
    runs = {row["code"]: row for row in r["rows"]}
    check(sorted(runs) == ["dynae", "dynae-tica", "dynae-tica4"] and all("score" in v for v in runs.values()),
          f"three scored runs: {sorted(runs)}")
    check(os.path.isdir(os.path.join(out, "dynae-raw-s0")) and os.path.isdir(os.path.join(out, "dynae-tica4-raw-s0")),
          "run folders: dynae-<scaling>-s<seed> for DynamicsAE, dynae-<model>-... for the others")
    with h5py.File(os.path.join(out, "dynae-tica-raw-s0", "out", "results.h5"), "r") as f:
        check("tica" in f and len(f["tica/eigenvalues"]) == 2, "model tica: /tica/ with 2 components")
    with h5py.File(os.path.join(out, "dynae-tica4-raw-s0", "out", "results.h5"), "r") as f:
        check(len(f["tica/eigenvalues"]) == 4, "tica4: data.tica_dim = 4")
    check(runs["dynae"]["history"].get("tica") is None, "no TICA in the plain DynamicsAE run")
    for name in ("dynae-tica", "dynae-tica4"):
        t = runs[name]["history"]["tica"]
        check(t["eigenvalues_rel_err"] < 1e-8 and t["timescales_rel_err"] < 1e-8 and t["kept"] == t["kept_reference"],
              f"{name}: the program's TICA against NumPy: {t}")
    check(runs["dynae-tica"]["history"]["tica"]["latent_rel_err"] < 1e-5, "model tica: latent = NumPy's TICs")
    for v in runs.values():
        check(1.0 <= v["score"]["vamp2"] <= 3.0 + 1e-9, f"VAMP-2 of a 2-d latent in [1, 3]: {v['score']['vamp2']}")
    check("median dynae-tica4-raw" in text and "TICA of dynae-tica-raw-s0 against NumPy" in text, "summary printed")


def t_study_args(tmp):
    data = generate(tmp)
    for bad in (["--codes", "torch"], ["--scalings", "minmax"], ["--seeds", "a,b"],
                ["--kind", "three-well", "--native"], ["--models", "pca"], ["--models", "tica0"],
                ["--models", "tica", "--native"]):
        run("md_study.py", data, "--out", os.path.join(tmp, "s"), *bad, expect=2)
    run("md_study.py", os.path.join(tmp, "missing.h5"), "--out", os.path.join(tmp, "s"), expect=2)


if __name__ == "__main__":
    main({"ala2_layout": t_ala2_layout, "ala4_layout": t_ala4_layout,
          "ala2_reproducible": t_ala2_reproducible, "ala2_args": t_ala2_args,
          "evaluate_known": t_evaluate_known, "evaluate_collapse": t_evaluate_collapse,
          "evaluate_fails": t_evaluate_fails, "evaluate_results_file": t_evaluate_results_file,
          "evaluate_bad_input": t_evaluate_bad_input,
          "study_dynae": t_study_dynae, "study_models": t_study_models, "study_args": t_study_args}, sys.argv)
