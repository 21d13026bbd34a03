#!/usr/bin/python3
"""Molecular test data for dynae-mpi: Langevin dynamics of a capped alanine peptide,
ACE-(ALA)n-NME, in implicit solvent with OpenMM, written in the H5MD layout.

n = 1 is alanine dipeptide (this tool); tools/gen_ala4.py makes the tetrapeptide (n = 3) with the
same code. Nothing is downloaded: the starting structure is built from internal coordinates (the
bond lengths, angles and torsions of a standard peptide geometry, hydrogens included), OpenMM's
force field matches its residue templates to it, the energy is minimised and the system
equilibrated before frames are kept.

Output (one HDF5 file; lengths in nm, times in ps):
  /h5md                                  H5MD version, author and creator attributes
  /particles/all/position/value          (frames, atoms, 3) float32, with step (frames) int64
                                         and time (frames) float64 beside it
  /particles/all/species                 (atoms,) int32 atomic numbers
  /particles/all/box                     attributes dimension = 3, boundary = none (no box)
  /parameters/atom_names, residue_names, residue_index   (atoms,) per atom
  /truth/dihedrals                       (frames, 2n) float64 phi_1, psi_1, ..., phi_n, psi_n
                                         in radians, (-pi, pi]
  /truth/dihedral_atoms                  (2n, 4) int32 the 0-based atoms of each dihedral
  /truth/heavy_atoms                     (heavy,) int32 0-based indices of the non-hydrogens
  /features/aligned_heavy                (frames, 3 * heavy) float32 the heavy atoms of every
                                         frame Kabsch-aligned (rotation, no reflection, and
                                         translation) onto the first frame, flattened x, y, z
and every parameter as a root attribute. The frames are written in blocks as the run goes, so
an interrupted run leaves a consistent, shorter file (root attribute `frames` says how many).

Defaults and why: amber14 (ff14SB) with OBC2 implicit solvent, no cut-off, bonds to hydrogen
constrained, hydrogen mass 4 amu (repartitioned from the heavy atom it is bonded to) so that a
4 fs step is stable, Langevin (middle scheme) at 300 K with friction 1/ps, one frame per ps.
The CPU platform runs with one thread; seed and settings fix the trajectory on one machine.
"""
import argparse
import math
import os
import sys
import time

import numpy as np

try:
    import h5py
    import openmm
    from openmm import app, unit
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.exit("gen_ala2.py: h5py or openmm is missing; run it with /usr/bin/python3 "
             "(Debian's python3-h5py, python3-simtk)")

VERSION = 1
TOOL = "gen_ala2.py"
FORCE_FIELDS = {  # name: (protein file, implicit-solvent file), as shipped with OpenMM
    "amber14": ("amber14-all.xml", "implicit/obc2.xml"),
    "amber14-gbn2": ("amber14-all.xml", "implicit/gbn2.xml"),
    "amber99sb": ("amber99sb.xml", "amber99_obc.xml"),
}
BLOCK_FRAMES = 500  # frames per write to the file

# Standard peptide geometry (Angstrom, degrees).
BOND = {("C", "N"): 1.329, ("N", "CA"): 1.458, ("CA", "C"): 1.525, ("CH3", "C"): 1.520,
        ("N", "CH3"): 1.449, ("C", "O"): 1.231, ("N", "H"): 1.010, ("CA", "CB"): 1.530,
        ("C", "H"): 1.090}
ANGLE_AT = {"N": 121.7, "CA": 111.2, "C": 116.2, "CH3": 111.0}  # backbone angle at each atom
ATOMIC_NUMBER = {"H": 1, "C": 6, "N": 7, "O": 8}


def fail(msg, code=2):
    print(f"{TOOL}: error: {msg}", file=sys.stderr)
    sys.exit(code)


def place(a, b, c, bond, angle, torsion):
    """The point d bonded to c with |cd| = bond, angle b-c-d and torsion a-b-c-d (degrees)."""
    bc = c - b
    bc /= np.linalg.norm(bc)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.cross(n, bc)
    th, ph = math.radians(angle), math.radians(torsion)
    d2 = np.array([-bond * math.cos(th), bond * math.sin(th) * math.cos(ph),
                   bond * math.sin(th) * math.sin(ph)])
    return c + d2[0] * bc + d2[1] * m + d2[2] * n


def build_peptide(n_ala, phi, psi):
    """Atoms (residue index, residue name, atom name) and positions (Angstrom) of ACE-(ALA)n-NME
    with every backbone phi, psi as given and trans peptide bonds."""
    resnames = ["ACE"] + ["ALA"] * n_ala + ["NME"]
    pos = {}
    # Backbone in chain order: its own bonds, angles and torsions fix every position.
    chain = [(0, "CH3"), (0, "C")]
    for r in range(1, n_ala + 1):
        chain += [(r, "N"), (r, "CA"), (r, "C")]
    chain += [(n_ala + 1, "N"), (n_ala + 1, "CH3")]

    def bond(x, y):
        return BOND.get((x, y)) or BOND[(y, x)]

    pos[chain[0]] = np.zeros(3)
    pos[chain[1]] = np.array([bond("CH3", "C"), 0.0, 0.0])
    th = math.radians(180.0 - ANGLE_AT["C"])
    pos[chain[2]] = pos[chain[1]] + bond("C", "N") * np.array([math.cos(th), math.sin(th), 0.0])
    for k in range(3, len(chain)):
        name = chain[k][1]
        if name in ("CA", "CH3"):
            tors = 180.0  # omega
        elif name == "C":
            tors = phi
        else:
            tors = psi
        pos[chain[k]] = place(pos[chain[k - 3]], pos[chain[k - 2]], pos[chain[k - 1]],
                              bond(chain[k - 1][1], name), ANGLE_AT[chain[k - 1][1]], tors)
    p = lambda r, nm: pos[(r, nm)]  # noqa: E731
    # Branches.
    for r in range(0, n_ala + 1):  # carbonyl O, in the peptide plane opposite the next N
        prev = "CH3" if r == 0 else "CA"
        pos[(r, "O")] = place(p(r + 1, "N"), p(r, prev), p(r, "C"), BOND[("C", "O")], 120.5, 180.0)
    for r in range(1, n_ala + 2):  # amide H, opposite the previous C
        heavy = "CA" if r <= n_ala else "CH3"
        pos[(r, "H")] = place(p(r - 1, "C"), p(r, heavy), p(r, "N"), BOND[("N", "H")], 119.0, 180.0)
    for r in range(1, n_ala + 1):  # L-alanine side chain and alpha hydrogen
        pos[(r, "CB")] = place(p(r, "N"), p(r, "C"), p(r, "CA"), BOND[("CA", "CB")], 110.1, 122.7)
        pos[(r, "HA")] = place(p(r, "N"), p(r, "C"), p(r, "CA"), BOND[("C", "H")], 109.5, -117.9)
        for j, t in enumerate((60.0, 180.0, -60.0)):
            pos[(r, f"HB{j + 1}")] = place(p(r, "N"), p(r, "CA"), p(r, "CB"), BOND[("C", "H")], 109.5, t)
    for j, t in enumerate((0.0, 120.0, -120.0)):  # the caps' methyl hydrogens
        pos[(0, f"HH3{j + 1}")] = place(p(0, "O"), p(0, "C"), p(0, "CH3"), BOND[("C", "H")], 109.5, t)
        pos[(n_ala + 1, f"HH3{j + 1}")] = place(p(n_ala, "C"), p(n_ala + 1, "N"), p(n_ala + 1, "CH3"),
                                                BOND[("C", "H")], 109.5, t + 60.0)
    order = {"ACE": ["HH31", "CH3", "HH32", "HH33", "C", "O"],
             "ALA": ["N", "H", "CA", "HA", "CB", "HB1", "HB2", "HB3", "C", "O"],
             "NME": ["N", "H", "CH3", "HH31", "HH32", "HH33"]}
    atoms, xyz = [], []
    for r, rn in enumerate(resnames):
        for nm in order[rn]:
            atoms.append((r, rn, nm))
            xyz.append(pos[(r, nm)])
    return atoms, np.array(xyz)


def make_topology(atoms):
    top = app.Topology()
    chain = top.addChain()
    residues = {}
    for r, rn, nm in atoms:
        if r not in residues:
            residues[r] = top.addResidue(rn, chain)
        top.addAtom(nm, app.Element.getBySymbol(nm[0]), residues[r])
    idx = {(r, nm): i for i, (r, _, nm) in enumerate(atoms)}
    at = list(top.atoms())
    last = max(r for r, _, _ in atoms)
    for (r, nm), i in idx.items():
        if nm == "O" or nm == "CB" or nm == "HA":
            j = idx[(r, "C" if nm == "O" else "CA")]
        elif nm == "H":
            j = idx[(r, "N")]
        elif nm.startswith("HB"):
            j = idx[(r, "CB")]
        elif nm.startswith("HH3"):
            j = idx[(r, "CH3")]
        elif nm == "CA" or (nm == "CH3" and r == last):
            j = idx[(r, "N")]
        elif nm == "C" and r > 0:
            j = idx[(r, "CA")]
        elif nm == "C":
            j = idx[(r, "CH3")]
        elif nm == "N":
            j = idx[(r - 1, "C")]
        else:  # the first residue's CH3 starts the chain
            continue
        top.addBond(at[i], at[j])
    return top


def dihedral_atoms(atoms, n_ala):
    """(2n, 4) atom indices of phi_1, psi_1, ..., phi_n, psi_n."""
    idx = {(r, nm): i for i, (r, _, nm) in enumerate(atoms)}
    out = []
    for r in range(1, n_ala + 1):
        out.append([idx[(r - 1, "C")], idx[(r, "N")], idx[(r, "CA")], idx[(r, "C")]])
        out.append([idx[(r, "N")], idx[(r, "CA")], idx[(r, "C")], idx[(r + 1, "N")]])
    return np.array(out, dtype=np.int32)


def dihedrals(x, quads):
    """Torsion angles (frames, len(quads)) in radians of positions x (frames, atoms, 3)."""
    x = np.asarray(x, dtype=np.float64)
    b0 = x[:, quads[:, 0]] - x[:, quads[:, 1]]
    b1 = x[:, quads[:, 2]] - x[:, quads[:, 1]]
    b2 = x[:, quads[:, 3]] - x[:, quads[:, 2]]
    b1 /= np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1, axis=-1, keepdims=True) * b1
    w = b2 - np.sum(b2 * b1, axis=-1, keepdims=True) * b1
    return np.arctan2(np.sum(np.cross(b1, v) * w, axis=-1), np.sum(v * w, axis=-1))


def kabsch_align(x, ref):
    """Every frame of x (frames, atoms, 3) rotated (no reflection) and translated onto ref."""
    x = np.asarray(x, dtype=np.float64)
    rc = ref.mean(axis=0)
    xc = x - x.mean(axis=1, keepdims=True)
    h = np.einsum("fai,aj->fij", xc, ref - rc)
    u, _, vt = np.linalg.svd(h)
    s = np.sign(np.linalg.det(np.einsum("fij,fjk->fik", u, vt)))
    u[:, :, 2] *= s[:, None]
    rot = np.einsum("fij,fjk->fik", u, vt)  # x_c @ rot ~ ref_c
    return np.einsum("fai,fij->faj", xc, rot) + rc


def parse_args(argv, n_ala, default_frames):
    ap = argparse.ArgumentParser(
        prog=TOOL, description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output HDF5 file")
    ap.add_argument("--frames", type=int, default=default_frames, help="frames kept (default %(default)s)")
    ap.add_argument("--frame-ps", type=float, default=1.0, help="ps between frames (default 1)")
    ap.add_argument("--dt-fs", type=float, default=4.0, help="time step in fs (default 4)")
    ap.add_argument("--hydrogen-mass", type=float, default=4.0,
                    help="hydrogen mass in amu, repartitioned from the bonded heavy atom (default 4)")
    ap.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    ap.add_argument("--friction", type=float, default=1.0, help="Langevin friction in 1/ps (default 1)")
    ap.add_argument("--equilibrate-ps", type=float, default=100.0, help="ps before the first frame (default 100)")
    ap.add_argument("--forcefield", choices=sorted(FORCE_FIELDS), default="amber14",
                    help="force field and implicit solvent (default amber14 = ff14SB + OBC2)")
    ap.add_argument("--seed", type=int, default=1, help="random seed, > 0 (default 1)")
    ap.add_argument("--phi", type=float, default=-80.0, help="starting backbone phi in degrees")
    ap.add_argument("--psi", type=float, default=150.0, help="starting backbone psi in degrees")
    ap.add_argument("--threads", type=int, default=1, help="CPU platform threads (default 1)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    a = ap.parse_args(argv)
    if a.frames < 2:
        fail("--frames must be at least 2")
    for name in ("frame_ps", "dt_fs", "temperature", "friction", "hydrogen_mass"):
        if not getattr(a, name) > 0:
            fail(f"--{name.replace('_', '-')} must be positive")
    if a.equilibrate_ps < 0:
        fail("--equilibrate-ps must not be negative")
    if a.seed <= 0:
        fail("--seed must be positive (OpenMM treats 0 as 'pick one at random')")
    if a.threads < 1:
        fail("--threads must be at least 1")
    steps = a.frame_ps * 1000.0 / a.dt_fs
    if abs(steps - round(steps)) > 1e-9:
        fail(f"--frame-ps {a.frame_ps} is not a whole number of --dt-fs {a.dt_fs} steps")
    a.steps_per_frame = int(round(steps))
    a.n_ala = n_ala
    return a


def simulate(a, name):
    """Runs the simulation and writes the file as it goes; returns the summary dict."""
    atoms, xyz = build_peptide(a.n_ala, a.phi, a.psi)
    top = make_topology(atoms)
    expect_bonds = len(atoms) - 1  # the peptide is a tree
    if top.getNumBonds() != expect_bonds:
        fail(f"internal: {top.getNumBonds()} bonds in the built topology, expected {expect_bonds}", 1)
    ff = app.ForceField(*FORCE_FIELDS[a.forcefield])
    system = ff.createSystem(top, nonbondedMethod=app.NoCutoff, constraints=app.HBonds,
                             hydrogenMass=a.hydrogen_mass * unit.amu)
    integ = openmm.LangevinMiddleIntegrator(a.temperature * unit.kelvin, a.friction / unit.picosecond,
                                            a.dt_fs * unit.femtoseconds)
    integ.setRandomNumberSeed(a.seed)
    platform = openmm.Platform.getPlatformByName("CPU")
    sim = app.Simulation(top, system, integ, platform, {"Threads": str(a.threads)})
    sim.context.setPositions(xyz * 0.1 * unit.nanometer)
    e0 = sim.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    openmm.LocalEnergyMinimizer.minimize(sim.context, 1.0, 0)
    e1 = sim.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    sim.context.setVelocitiesToTemperature(a.temperature * unit.kelvin, a.seed)
    eq_steps = int(round(a.equilibrate_ps * 1000.0 / a.dt_fs))
    if eq_steps:
        sim.step(eq_steps)
    if not a.quiet:
        print(f"{name}: {len(atoms)} atoms, energy {e0:.1f} kJ/mol as built, {e1:.1f} minimised; "
              f"equilibrated {a.equilibrate_ps:g} ps", flush=True)

    quads = dihedral_atoms(atoms, a.n_ala)
    heavy = np.array([i for i, (_, _, nm) in enumerate(atoms) if nm[0] != "H"], dtype=np.int32)
    n_atoms = len(atoms)
    tmp = a.out + ".part"
    f = h5py.File(tmp, "w")
    f.create_group("h5md").attrs["version"] = np.array([1, 1], dtype=np.int32)
    f["h5md"].create_group("author").attrs["name"] = "dynae-mpi tools"
    cr = f["h5md"].create_group("creator")
    cr.attrs["name"] = TOOL if a.n_ala == 1 else f"{name} (via {TOOL})"
    cr.attrs["version"] = str(VERSION)
    part = f.create_group("particles/all")
    part.create_dataset("species", data=np.array([ATOMIC_NUMBER[nm[0]] for _, _, nm in atoms], np.int32))
    box = part.create_group("box")
    box.attrs["dimension"] = np.int32(3)
    box.attrs["boundary"] = np.array([b"none"] * 3)
    g = part.create_group("position")
    val = g.create_dataset("value", (0, n_atoms, 3), maxshape=(None, n_atoms, 3), dtype=np.float32,
                           chunks=(min(BLOCK_FRAMES, a.frames), n_atoms, 3))
    val.attrs["unit"] = "nm"
    step_ds = g.create_dataset("step", (0,), maxshape=(None,), dtype=np.int64, chunks=(4096,))
    time_ds = g.create_dataset("time", (0,), maxshape=(None,), dtype=np.float64, chunks=(4096,))
    time_ds.attrs["unit"] = "ps"
    par = f.create_group("parameters")
    par.create_dataset("atom_names", data=np.array([nm.encode() for _, _, nm in atoms]))
    par.create_dataset("residue_names", data=np.array([rn.encode() for _, rn, _ in atoms]))
    par.create_dataset("residue_index", data=np.array([r for r, _, _ in atoms], np.int32))
    tr = f.create_group("truth")
    dih = tr.create_dataset("dihedrals", (0, len(quads)), maxshape=(None, len(quads)), dtype=np.float64,
                            chunks=(4096, len(quads)))
    dih.attrs["unit"] = "rad"
    dih.attrs["names"] = np.array([f"{k}{r}".encode() for r in range(1, a.n_ala + 1) for k in ("phi", "psi")])
    tr.create_dataset("dihedral_atoms", data=quads)
    tr.create_dataset("heavy_atoms", data=heavy)
    al = f.create_group("features").create_dataset(
        "aligned_heavy", (0, 3 * len(heavy)), maxshape=(None, 3 * len(heavy)), dtype=np.float32,
        chunks=(min(4096, a.frames), 3 * len(heavy)))
    al.attrs["unit"] = "nm"
    attrs = dict(generator=TOOL, generator_version=VERSION, system=name, n_ala=a.n_ala,
                 forcefield=" + ".join(FORCE_FIELDS[a.forcefield]), temperature_K=a.temperature,
                 friction_per_ps=a.friction, dt_fs=a.dt_fs, hydrogen_mass_amu=a.hydrogen_mass,
                 frame_ps=a.frame_ps, steps_per_frame=a.steps_per_frame, equilibrate_ps=a.equilibrate_ps,
                 seed=a.seed, start_phi_deg=a.phi, start_psi_deg=a.psi, threads=a.threads,
                 openmm_version=openmm.__version__, frames_requested=a.frames, frames=0,
                 integrator="LangevinMiddleIntegrator", constraints="HBonds", nonbonded="NoCutoff")
    for k, v in attrs.items():
        f.attrs[k] = v

    ref = None
    t0 = time.time()
    done = 0
    last_print = t0
    while done < a.frames:
        n = min(BLOCK_FRAMES, a.frames - done)
        block = np.empty((n, n_atoms, 3), dtype=np.float64)
        for i in range(n):
            if done + i > 0:
                sim.step(a.steps_per_frame)
            block[i] = sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        if ref is None:
            ref = block[0, heavy].copy()
        for ds, data in ((val, block.astype(np.float32)),
                         (step_ds, (done + np.arange(n)) * a.steps_per_frame),
                         (time_ds, (done + np.arange(n)) * a.frame_ps),
                         (dih, dihedrals(block, quads)),
                         (al, kabsch_align(block[:, heavy], ref).reshape(n, -1).astype(np.float32))):
            ds.resize(done + n, axis=0)
            ds[done:done + n] = data
        done += n
        f.attrs["frames"] = done
        f.flush()
        now = time.time()
        if not a.quiet and (now - last_print > 60 or done == a.frames):
            ns = done * a.frame_ps / 1000.0
            print(f"{name}: {done}/{a.frames} frames, {ns * 86400.0 / (now - t0):.1f} ns/day", flush=True)
            last_print = now
    seconds = time.time() - t0
    ns_day = (a.frames - 1) * a.frame_ps / 1000.0 * 86400.0 / max(seconds, 1e-9)
    f.attrs["ns_per_day"] = ns_day
    f.close()
    os.replace(tmp, a.out)
    d = dihedrals(np.asarray(h5py.File(a.out, "r")["particles/all/position/value"]), quads)
    return dict(atoms=n_atoms, heavy=len(heavy), frames=a.frames, ns=a.frames * a.frame_ps / 1000.0,
                seconds=seconds, ns_per_day=ns_day, energy_built=e0, energy_minimised=e1,
                alpha_r=float(np.mean((d[:, 0] < 0) & (d[:, 1] > -2.0) & (d[:, 1] < 0.8))),
                alpha_l=float(np.mean(d[:, 0] > 0)))


def main(argv=None, n_ala=1, name="alanine dipeptide", default_frames=2000):
    a = parse_args(argv, n_ala, default_frames)
    if os.path.dirname(os.path.abspath(a.out)) and not os.path.isdir(os.path.dirname(os.path.abspath(a.out))):
        fail(f"{a.out}: the folder does not exist")
    s = simulate(a, name)
    print(f"{a.out}: {s['frames']} frames ({s['ns']:g} ns, {a.frame_ps:g} ps apart), {s['atoms']} atoms, "
          f"{s['heavy']} heavy ({3 * s['heavy']} aligned features); {s['seconds']:.1f} s, "
          f"{s['ns_per_day']:.1f} ns/day")
    print(f"phi_1 < 0 with psi_1 in (-2, 0.8) rad (alpha-R basin): {s['alpha_r']:.3f} of frames; "
          f"phi_1 > 0 (alpha-L side): {s['alpha_l']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
