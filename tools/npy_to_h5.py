#!/usr/bin/python3
"""Convert NumPy .npy trajectories into the HDF5 input layout of dynae-mpi.

Each .npy file holds one trajectory: a 2-D array (frames, features), or a 3-D array
(frames, atoms, 3) that is flattened automatically to (frames, atoms*3) in row-major order
(x, y, z of atom 0, then of atom 1, ...). Every trajectory becomes one dataset of a single
HDF5 file, float32 unless --float64 is given (match the program's precision). The tool prints
the data.input line to paste into the input file.

Examples:
  /usr/bin/python3 tools/npy_to_h5.py run1.npy run2.npy --out data/traj.h5
  /usr/bin/python3 tools/npy_to_h5.py coords.npy --names positions --out traj.h5 --toml-dir inputs
"""
import argparse
import os
import re
import sys

import numpy as np

try:
    import h5py
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.exit("npy_to_h5.py: h5py is missing; run it with /usr/bin/python3 (Debian's python3-h5py)")

ROWS_PER_BLOCK = 1 << 16  # frames converted and checked at a time (bounds memory for big arrays)
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class InputError(Exception):
    """The user's mistake: reported with exit code 2."""


def fail(msg):
    print(f"npy_to_h5.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def open_array(path):
    """Memory-maps one .npy file and returns (array, shape it will be written with, note)."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file")
    except (ValueError, OSError) as e:
        raise InputError(f"{path}: not a readable .npy array ({e})")
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{path}: holds several arrays (.npz?); save each trajectory as its own .npy")
    if arr.dtype.kind not in "fiu":
        raise InputError(f"{path}: dtype {arr.dtype} is not a real number type (need float or integer)")
    note = ""
    if arr.ndim == 2:
        shape = arr.shape
    elif arr.ndim == 3:
        shape = (arr.shape[0], arr.shape[1] * arr.shape[2])
        note = f" (flattened from {arr.shape[0]} x {arr.shape[1]} x {arr.shape[2]})"
    else:
        raise InputError(f"{path}: shape {arr.shape} has {arr.ndim} dimension(s); need 2-D (frames, features) "
                         "or 3-D (frames, atoms, 3)")
    if shape[0] < 2:
        raise InputError(f"{path}: {shape[0]} frame(s); a trajectory needs at least 2 to form a pair")
    if shape[1] < 1:
        raise InputError(f"{path}: shape {arr.shape} has no features")
    return arr, shape, note


def copy_checked(path, arr, dset):
    """Copies arr into dset block by block, refusing NaN and infinity."""
    rows = arr.shape[0]
    width = dset.shape[1]
    for r0 in range(0, rows, ROWS_PER_BLOCK):
        r1 = min(rows, r0 + ROWS_PER_BLOCK)
        block = np.asarray(arr[r0:r1]).reshape(r1 - r0, width)
        with np.errstate(over="ignore", invalid="ignore"):  # reported below, naming the value
            out = block.astype(dset.dtype)
        bad = ~np.isfinite(out)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            what = "is not finite" if not np.isfinite(block[r, c]) else f"overflows {dset.dtype}"
            raise InputError(f"{path}: value at frame {r0 + r}, feature {c} {what} ({block[r, c]})")
        dset[r0:r1] = out


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Convert .npy trajectories (2-D (frames, features) or 3-D (frames, atoms, 3), "
                    "the latter flattened to (frames, atoms*3)) into one HDF5 file for dynae-mpi.")
    p.add_argument("arrays", nargs="+", metavar="ARRAY.npy", help="one .npy file per trajectory")
    p.add_argument("--out", required=True, help="HDF5 file to write")
    p.add_argument("--names", help="comma-separated dataset names, one per array (default traj0, traj1, ...)")
    p.add_argument("--float64", action="store_true", help="write float64 (default float32)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--toml-dir", default=None,
                   help="folder of the input file, to print the path relative to it "
                        "(default: print the absolute path)")
    a = p.parse_args(argv)
    if a.names is None:
        a.names = [f"traj{i}" for i in range(len(a.arrays))]
    else:
        a.names = [n.strip().lstrip("/") for n in a.names.split(",")]
        if len(a.names) != len(a.arrays):
            p.error(f"--names gives {len(a.names)} name(s) for {len(a.arrays)} array(s)")
        for n in a.names:
            if not NAME_RE.match(n):
                p.error(f"--names: '{n}' is not a plain dataset name (letters, digits, _ . -)")
        if len(set(a.names)) != len(a.names):
            p.error("--names: the names must differ")
    if os.path.exists(a.out) and not a.force:
        p.error(f"{a.out} exists; pass --force to overwrite it")
    return a


def convert(a):
    """Checks every array's header first, then writes to a temporary file renamed at the end."""
    dtype = np.float64 if a.float64 else np.float32
    opened = [open_array(path) for path in a.arrays]
    folder = os.path.dirname(os.path.abspath(a.out))
    if not os.path.isdir(folder):
        raise InputError(f"cannot write {a.out}: folder {folder} does not exist")
    tmp = a.out + ".tmp"
    try:
        with h5py.File(tmp, "w") as f:
            for path, name, (arr, shape, _) in zip(a.arrays, a.names, opened):
                # Contiguous layout: the program reads row blocks with collective MPI-IO.
                dset = f.create_dataset(name, shape=shape, dtype=dtype, track_times=False)
                dset.attrs["source"] = os.path.abspath(path)
                copy_checked(path, arr, dset)
        os.replace(tmp, a.out)
    except OSError as e:
        raise InputError(f"cannot write {a.out}: {e}")
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    for path, name, (_, shape, note) in zip(a.arrays, a.names, opened):
        print(f"{path} -> {a.out}:/{name}  {shape[0]} x {shape[1]} {np.dtype(dtype).name}{note}")
    shown = os.path.relpath(a.out, a.toml_dir) if a.toml_dir is not None else os.path.abspath(a.out)
    entries = ", ".join(f'"{shown}:/{name}"' for name in a.names)
    print("# paste into the [data] section of the input file:")
    print(f"input = [{entries}]")


def main(argv=None):
    a = parse_args(argv)
    try:
        convert(a)
    except InputError as e:
        fail(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
