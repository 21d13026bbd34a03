#!/usr/bin/python3
"""Checkpoint files and run locks: written at 2 ranks, read back at 1, 2 and 4; damaged copies
(truncated, flipped bytes at the start and at the end of every array, a missing dataset) are
detected, named, and the previous checkpoint is used; with both damaged the load fails with exit code 2; a live run's lock refuses a second run
and a killed run's lock does not."""
import argparse, os, shutil, signal, subprocess, sys, time
import h5py

ap = argparse.ArgumentParser()
ap.add_argument("--tool", required=True)
ap.add_argument("--mpiexec", required=True)
ap.add_argument("--work", required=True)
a = ap.parse_args()
failures = []


def run(ranks, *args):
    cmd = [a.mpiexec, "-n", str(ranks), "--oversubscribe", a.tool, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def expect(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name)
    if not cond:
        print(detail)
        failures.append(name)


shutil.rmtree(a.work, ignore_errors=True)
base = os.path.join(a.work, "base")
os.makedirs(base)
rc, out = run(2, "write", base)
expect("write at 2 ranks", rc == 0, out)
expect("previous checkpoint kept", os.path.exists(os.path.join(base, "checkpoint.prev.h5")))
expect("no temporary file left", not os.path.exists(os.path.join(base, "checkpoint.h5.tmp")))
for ranks in (1, 2, 4):
    rc, out = run(ranks, "read", base, "2")
    expect(f"read at {ranks} ranks", rc == 0 and "warning" not in out, out)


def damaged(case, how):
    d = os.path.join(a.work, case)
    shutil.copytree(base, d)
    how(os.path.join(d, "checkpoint.h5"))
    return d


def truncate(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size * 6 // 10)


def flip_data(path, name="params"):
    with h5py.File(path, "r") as f:
        off = f[name].id.get_offset()
    with open(path, "r+b") as f:
        f.seek(off + 100)
        b = bytearray(f.read(4))
        f.seek(off + 100)
        f.write(bytes(x ^ 0x5A for x in b))


def drop(path, name="small"):
    with h5py.File(path, "r+") as f:
        del f[name]


def truncate_last(path):
    """Cut inside the array stored last: one byte short."""
    with h5py.File(path, "r") as f:
        ends = []
        f.visititems(lambda n, o: ends.append(o.id.get_offset() + o.id.get_storage_size())
                     if isinstance(o, h5py.Dataset) and o.id.get_storage_size() > 0 else None)
    with open(path, "r+b") as f:
        f.truncate(max(ends) - 1)


cases = [("truncated", truncate, ["checkpoint.h5", "truncated"]),
         ("truncated_last_byte", truncate_last, ["checkpoint.h5"]),
         ("flipped", flip_data, ["checkpoint.h5", "/params", "digest"]),
         ("missing", drop, ["checkpoint.h5", "/small", "missing"])]
for case, how, words in cases:
    d = damaged(case, how)
    rc, out = run(2, "read", d, "1")
    expect(f"{case}: falls back to the previous checkpoint", rc == 0, out)
    expect(f"{case}: warning names the problem", "warning" in out and all(w in out for w in words), out)
    # both damaged: nothing usable, exit 2, both named
    how(os.path.join(d, "checkpoint.prev.h5"))
    rc, out = run(1, "read", d, "1")
    expect(f"{case}: both damaged -> exit 2", rc == 2 and "checkpoint.prev.h5" in out and "no usable checkpoint" in out, out)

# Every array of the checkpoint, damaged at its first and at its last bytes: each is found by its
# digest (the distributed ones through their blocks' digests) and the previous checkpoint is used.
def flip_at(name, where):
    def how(path):
        with h5py.File(path, "r") as f:
            off, size = f[name].id.get_offset(), f[name].id.get_storage_size()
        n = min(4, size)
        with open(path, "r+b") as f:
            f.seek(off if where == "start" else off + size - n)
            b = bytearray(f.read(n))
            f.seek(off if where == "start" else off + size - n)
            f.write(bytes(x ^ 0x5A for x in b))
    return how


arrays = []
with h5py.File(os.path.join(base, "checkpoint.h5"), "r") as f:
    f.visititems(lambda n, o: arrays.append(n) if isinstance(o, h5py.Dataset) and o.id.get_storage_size() > 0 else None)
expect("the checkpoint holds distributed arrays", any(n.endswith(".offsets") for n in arrays), str(arrays))
for name in arrays:
    for where in ("start", "end"):
        d = damaged(f"flip_{name}_{where}", flip_at(name, where))
        rc, out = run(2, "read", d, "1")
        # a damaged list of blocks may be named, or the array it cuts into blocks
        expect(f"/{name} damaged at its {where}: found, previous checkpoint used",
               rc == 0 and "warning" in out and f"/{name.split('.')[0]}" in out and "checkpoint.h5" in out, out)

# run lock
ld = os.path.join(a.work, "lock")
os.makedirs(ld)
env = dict(os.environ)
holder = subprocess.Popen([a.tool, "lock", ld, "60"], stdout=subprocess.PIPE, text=True, env=env)
line = holder.stdout.readline()
expect("first run takes the lock", line.strip() == "locked", line)
rc, out = run(1, "lock", ld)
expect("second run refused while the first lives (exit 2)", rc == 2 and "in use" in out and "pid" in out, out)
holder.send_signal(signal.SIGKILL)
holder.wait()
rc, out = run(1, "lock", ld)
expect("stale lock of a killed run does not block", rc == 0 and "locked" in out, out)

print(f"{len(failures)} failed" if failures else "all checkpoint file checks passed")
sys.exit(1 if failures else 0)
