#!/usr/bin/env python3
"""Molecular inputs against independent writers and numpy (SPEC section 9).

usage: check_frames.py --dump FRAMES_DUMP --dir SCRATCH --ranks N [--launcher MPIEXEC ARGS...]

Writes one small two-trajectory system (6 atoms, each frame a random rotation and shift of a
jittered structure) three ways: H5MD by MDAnalysis's H5MDWriter, HDF5 by MDTraj's save_hdf5, and a
plain (frames, atoms, 3) dataset by h5py. For each form and each data.features kind (with and
without data.atoms) frames_dump loads the data at N ranks and writes what every rank holds; the
rows must match the features computed here from the positions as stored in the files, with Kabsch
alignment and distances written out from their equations. Standardised cases (test_fraction 0,
so every frame of a pair counts) for each data.scale checks the statistics and the scaled rows.
Exit 0 when everything matches, 1 otherwise."""
import argparse
import glob
import os
import subprocess
import sys
import warnings

import h5py
import numpy as np

ATOMS = 6
FRAMES = (40, 31)
LAG = 2


def make_positions(seed=7):
    """(frames, atoms, 3) in nm per trajectory: a structure jittered, rotated and shifted."""
    rng = np.random.default_rng(seed)
    base = rng.normal(scale=0.3, size=(ATOMS, 3))
    out = []
    for frames in FRAMES:
        xyz = np.empty((frames, ATOMS, 3))
        for t in range(frames):
            q = rng.normal(size=4)
            q /= np.linalg.norm(q)
            a, b, c, d = q
            rot = np.array([[a*a + b*b - c*c - d*d, 2*(b*c - a*d), 2*(b*d + a*c)],
                            [2*(b*c + a*d), a*a - b*b + c*c - d*d, 2*(c*d - a*b)],
                            [2*(b*d - a*c), 2*(c*d + a*b), a*a - b*b - c*c + d*d]])
            shape = base + rng.normal(scale=0.05, size=base.shape)
            xyz[t] = shape @ rot.T + rng.normal(scale=0.5, size=3) + 2.0
        out.append(xyz.astype(np.float32))
    return out


def write_h5md(path, xyz):
    import MDAnalysis as mda
    from MDAnalysis.coordinates.H5MD import H5MDWriter
    from MDAnalysis.coordinates.memory import MemoryReader
    u = mda.Universe.empty(ATOMS, trajectory=True)
    u.load_new(xyz * 10.0, format=MemoryReader)  # MDAnalysis works in Angstrom
    with H5MDWriter(path, n_atoms=ATOMS, lengthunit="nm", timeunit="ps") as w:
        for _ in u.trajectory:
            w.write(u)


def write_mdtraj(path, xyz):
    import mdtraj as md
    top = md.Topology()
    res = top.add_residue("MOL", top.add_chain())
    for k in range(ATOMS):
        top.add_atom(f"C{k}", md.element.carbon, res)
    md.Trajectory(xyz, top).save_hdf5(path)


def kabsch_onto(p, ref):
    """p (n, 3) rotated (no reflection) and shifted onto ref (n, 3): minimise sum |R p_c - ref_c|^2."""
    pc, rc = p - p.mean(0), ref - ref.mean(0)
    u, _, vt = np.linalg.svd(pc.T @ rc)
    sign = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, sign]) @ u.T
    return pc @ rot.T + ref.mean(0)


def features(trajs, kind, atoms):
    sel = [x[:, atoms, :].astype(np.float64) if atoms else x.astype(np.float64) for x in trajs]
    if kind == "coordinates":
        return [s.reshape(len(s), -1) for s in sel]
    if kind == "aligned":
        ref = sel[0][0]
        return [np.array([kabsch_onto(f, ref) for f in s]).reshape(len(s), -1) for s in sel]
    n = sel[0].shape[1]
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    return [np.array([[np.sqrt(((f[i] - f[j]) ** 2).sum()) for i, j in pairs] for f in s]) for s in sel]


def collect(out, ntraj):
    got = []
    for i in range(ntraj):
        rows = {}
        for path in glob.glob(os.path.join(out, f"traj{i}.rank*.bin")):
            raw = open(path, "rb").read()
            start, count, D = np.frombuffer(raw[:24], dtype=np.int64)
            block = np.frombuffer(raw[24:], dtype=np.float64).reshape(count, D)
            for k in range(count):
                rows[start + k] = block[k]
        got.append(np.array([rows[t] for t in sorted(rows)]))
    raw = open(os.path.join(out, "stats.bin"), "rb").read()
    D, Dy = np.frombuffer(raw[:16], dtype=np.int64)
    vals = np.frombuffer(raw[16:], dtype=np.float64)
    stats = (vals[:D], vals[D:2 * D]) if D else None
    return got, stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--launcher", nargs=argparse.REMAINDER, default=[])
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    xyz = make_positions()
    warnings.simplefilter("ignore")
    forms = {}
    for i, x in enumerate(xyz):
        write_h5md(os.path.join(a.dir, f"t{i}.h5md"), x)
        write_mdtraj(os.path.join(a.dir, f"t{i}.mdtraj.h5"), x)
        with h5py.File(os.path.join(a.dir, f"t{i}.plain.h5"), "w") as f:
            f["pos"] = x.astype(np.float64)
    forms["h5md"] = [f"t{i}.h5md:/particles/trajectory/position" for i in range(2)]
    forms["mdtraj"] = [f"t{i}.mdtraj.h5:/coordinates" for i in range(2)]
    forms["plain"] = [f"t{i}.plain.h5:/pos" for i in range(2)]
    stored = {
        "h5md": [h5py.File(os.path.join(a.dir, f"t{i}.h5md"), "r")["particles/trajectory/position/value"][()]
                 for i in range(2)],
        "mdtraj": [h5py.File(os.path.join(a.dir, f"t{i}.mdtraj.h5"), "r")["coordinates"][()] for i in range(2)],
        "plain": [h5py.File(os.path.join(a.dir, f"t{i}.plain.h5"), "r")["pos"][()] for i in range(2)],
    }
    # The files hold what was written (nm): the writers are independent of us, not of the truth.
    for name, s in stored.items():
        for i in range(2):
            if not np.allclose(s[i], xyz[i], atol=1e-5):
                print(f"FAIL: {name} file does not hold the positions written")
                return 1

    cases = []
    for form in forms:
        for kind in ("coordinates", "aligned", "distances"):
            for atoms in ([], [5, 0, 2, 3]):
                cases.append((form, kind, atoms, False))
    cases.append(("h5md", "distances", [1, 2, 4], "common"))
    cases.append(("plain", "aligned", [], "common"))
    cases.append(("plain", "aligned", [], "feature"))
    bad = 0
    for n, (form, kind, atoms, std) in enumerate(cases):
        toml = os.path.join(a.dir, f"case{n}.toml")
        out = os.path.join(a.dir, f"case{n}.out")
        with open(toml, "w") as f:
            f.write("[data]\ninput = [%s]\n" % ", ".join(f'"{e}"' for e in forms[form]))
            f.write(f"lag = {LAG}\ntest_fraction = {0.0 if std else 0.25}\natoms = {atoms}\n")
            f.write(f'features = "{kind}"\nstandardize = {"true" if std else "false"}\n')
            if std:
                f.write(f'scale = "{std}"\n')
        for old in glob.glob(os.path.join(out, "*.bin")):
            os.remove(old)
        p = subprocess.run(a.launcher + [a.dump, toml, out], capture_output=True, text=True)
        what = f"case {n}: {form}, {kind}, atoms {atoms}, standardize {std}, {a.ranks} ranks"
        if p.returncode != 0:
            print(f"FAIL: {what}: exit {p.returncode}\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
            bad += 1
            continue
        got, stats = collect(out, 2)
        want = features(stored[form], kind, atoms)
        if std:
            # Training frames with test_fraction 0: both members of every pair (t, t + lag).
            rows = np.concatenate([np.concatenate([w[:len(w) - LAG], w[LAG:]]) for w in want])
            mean, sd = rows.mean(0), rows.std(0)
            if std == "common":  # one scale for all: the root mean square of the standard deviations
                sd = np.full_like(sd, np.sqrt(np.mean(sd ** 2)))
            if stats is None or not (np.allclose(stats[0], mean, rtol=1e-6, atol=1e-7)
                                     and np.allclose(stats[1], sd, rtol=1e-5, atol=1e-7)):
                print(f"FAIL: {what}: statistics differ\n  got {stats}\n  want {mean} {sd}")
                bad += 1
                continue
            want = [(w - mean) / sd for w in want]
        elif stats is not None:
            print(f"FAIL: {what}: statistics written with standardize off")
            bad += 1
        scale = max(np.abs(w).max() for w in want)
        for i in range(2):
            if got[i].shape != want[i].shape:
                print(f"FAIL: {what}: trajectory {i} has shape {got[i].shape}, expected {want[i].shape}")
                bad += 1
            elif not np.allclose(got[i], want[i], rtol=0, atol=2e-5 * scale):
                err = np.abs(got[i] - want[i])
                t, k = np.unravel_index(err.argmax(), err.shape)
                print(f"FAIL: {what}: trajectory {i} frame {t} feature {k}: {got[i][t, k]} != {want[i][t, k]}")
                bad += 1
        if not bad:
            print(f"ok: {what}")
    print(f"{len(cases) - min(bad, len(cases))} passed, {min(bad, len(cases))} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
