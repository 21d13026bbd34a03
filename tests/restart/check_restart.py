#!/usr/bin/python3
"""Checkpoint, restart and fault tolerance of the real program, end to end.

  kill      the run is killed with SIGKILL at >= 10 random moments (some during checkpoint writes)
            and resumed with --restart each time; its final weights and latent must be bitwise
            equal to an uninterrupted run at the same rank count.
  signal    SIGUSR1 makes the run write a checkpoint and exit with code 3; --restart then finishes
            bitwise equal to the uninterrupted run.
  ranks     a 2-rank run stopped by SIGUSR1 restarts at 1 and at 4 ranks and completes.
  corrupt   a damaged newest checkpoint is named and the previous one used; both damaged: exit 2.
  diverge   a run that diverges exits with code 4, naming epoch and step, and leaves its last good
            checkpoint untouched.
  lock      a second run on a folder in use is refused (exit 2).
"""
import argparse, hashlib, os, random, shutil, signal, subprocess, sys, time
import h5py
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("what", choices=["kill", "signal", "ranks", "corrupt", "diverge", "lock"])
ap.add_argument("--exe", required=True)
ap.add_argument("--mpiexec", required=True)
ap.add_argument("--src", required=True, help="the repository's top folder")
ap.add_argument("--work", required=True)
ap.add_argument("--kills", type=int, default=12)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name, flush=True)
    if not cond:
        print(detail[-3000:] if detail else "", flush=True)
        failures.append(name)


def setup(work):
    """A fresh run folder with its input file; the data is made once and shared."""
    data = os.path.join(os.path.dirname(work), "restart-data.h5")
    if not os.path.exists(data):
        subprocess.run([sys.executable, os.path.join(a.src, "tools", "gen_three_well.py"), "--frames", "12000",
                        "--seed", "5", "--out", data, "--quiet"], check=True)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    with open(os.path.join(os.path.dirname(__file__), "restart.toml.in")) as f:
        text = f.read().replace("@DATA@", data)
    path = os.path.join(work, "input.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def command(ranks, toml, *extra):
    return [a.mpiexec, "-n", str(ranks), "--oversubscribe", a.exe, toml, *extra]


def run(ranks, toml, *extra, timeout=600):
    p = subprocess.run(command(ranks, toml, *extra), capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def start(ranks, toml, *extra):
    # Own session, so that a kill reaches mpirun and every rank at once.
    return subprocess.Popen(command(ranks, toml, *extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def fingerprint(work):
    """Final weights (bytes of /params of the final checkpoint) and the latent of results.h5."""
    run_dir = os.path.join(work, "run")
    with h5py.File(os.path.join(run_dir, "checkpoint.h5"), "r") as f:
        params = f["params"][...].tobytes()
        epoch = int(f.attrs["epoch"])
    with h5py.File(os.path.join(run_dir, "results.h5"), "r") as f:
        latent = b"".join(f["latent"][k][...].tobytes() for k in sorted(f["latent"]))
        hist = f["history/epoch"][...]
    return hashlib.sha256(params).hexdigest(), hashlib.sha256(latent).hexdigest(), epoch, len(hist)


def reference(ranks):
    work = os.path.join(a.work, f"reference{ranks}")
    toml = setup(work)
    t0 = time.time()
    rc, out = run(ranks, toml)
    elapsed = time.time() - t0
    check(f"uninterrupted run at {ranks} ranks", rc == 0, out)
    return fingerprint(work), elapsed


def kill_job(p, toml):
    """SIGKILL to the whole job, as a batch system does: mpiexec and every rank (the ranks of
    Open MPI live in sessions of their own, so killing mpiexec's group is not enough)."""
    os.killpg(p.pid, signal.SIGKILL)
    subprocess.run(["pkill", "-KILL", "-f", toml])
    p.wait()
    deadline = time.time() + 30
    while subprocess.run(["pgrep", "-f", toml], capture_output=True).returncode == 0 and time.time() < deadline:
        time.sleep(0.05)


def no_strays(toml):
    """No rank of a killed run may live on and write into the folder."""
    time.sleep(0.2)
    out = subprocess.run(["pgrep", "-f", toml], capture_output=True, text=True).stdout.split()
    return [p for p in out if int(p) != os.getpid()]


def wait_for_write(work, p, limit):
    """Returns once a checkpoint is being written (its temporary file exists) or after limit s."""
    tmp = os.path.join(work, "run", "checkpoint.h5.tmp")
    deadline = time.time() + limit
    while time.time() < deadline and p.poll() is None:
        if os.path.exists(tmp):
            return True
        time.sleep(0.0005)
    return False


def checkpoint_id(work):
    try:
        return os.stat(os.path.join(work, "run", "checkpoint.h5")).st_ino  # a new file at every commit
    except FileNotFoundError:
        return None


def wait_for_commits(work, p, n, limit):
    """Returns after n more checkpoints were committed (or after limit s, or when p ends)."""
    seen, deadline = checkpoint_id(work), time.time() + limit
    while n > 0 and time.time() < deadline and p.poll() is None:
        now = checkpoint_id(work)
        if now != seen:
            seen, n = now, n - 1
        time.sleep(0.002)


def test_kill():
    """Kills come at random moments, but each attempt is let through at most two checkpoint
    commits, so that the run cannot finish before every kill has happened whatever the load."""
    ref, elapsed = reference(2)
    print(f"uninterrupted run: {elapsed:.1f} s", flush=True)
    work = os.path.join(a.work, "kill")
    toml = setup(work)
    rng = random.Random(a.seed)
    kills = during_write = 0
    for i in range(a.kills):
        p = start(2, toml, *(["--restart"] if i else []))
        if i % 3 == 2:
            # aim at a checkpoint write: kill as soon as its temporary file appears
            hit = wait_for_write(work, p, 4 * elapsed)
            if hit:
                time.sleep(rng.uniform(0, 0.004))
        else:
            hit = False
            wait_for_commits(work, p, rng.randrange(3), 4 * elapsed)
            time.sleep(rng.uniform(0, 0.05) * elapsed)
        if p.poll() is not None:
            print(f"attempt {i}: finished before the kill", flush=True)
            break
        kill_job(p, toml)
        kills += 1
        during_write += hit and os.path.exists(os.path.join(work, "run", "checkpoint.h5.tmp"))
        stray = no_strays(toml)
        check(f"kill {kills}: no rank of the job survives", not stray, f"still running: {stray}")
    rc, out = run(2, toml, "--restart")
    check(f"run completes after {kills} kills ({during_write} during a checkpoint write)", rc == 0, out)
    check("killed at least 10 times, some during checkpoint writes", kills >= 10 and during_write >= 1,
          f"{kills} kills, {during_write} during writes")
    got = fingerprint(work)
    check("final weights bitwise equal to the uninterrupted run", got[0] == ref[0], f"{got} vs {ref}")
    check("latent bitwise equal to the uninterrupted run", got[1] == ref[1], f"{got} vs {ref}")
    check("history complete", got[3] == ref[3], f"{got} vs {ref}")


def stop_with_usr1(ranks, toml, fraction, elapsed):
    p = start(ranks, toml)
    # Half-way by the reference's clock, but no later than the first checkpoint: on a loaded
    # machine a run's speed varies severalfold, and a signal after the last step stops nothing.
    first = os.path.join(os.path.dirname(toml), "run", "checkpoint.h5")
    deadline = time.time() + fraction * elapsed
    while time.time() < deadline and not os.path.exists(first) and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGUSR1)  # mpirun forwards SIGUSR1 to every rank
    out, _ = p.communicate(timeout=600)
    return p.returncode, out


def stopped_run(name):
    """The uninterrupted 2-rank reference, then the same run in its own folder stopped half-way by
    SIGUSR1."""
    ref, elapsed = reference(2)
    work = os.path.join(a.work, name)
    toml = setup(work)
    rc, out = stop_with_usr1(2, toml, 0.5, elapsed)
    return ref, work, toml, rc, out


def test_signal():
    ref, work, toml, rc, out = stopped_run("signal")
    check("SIGUSR1: exit code 3", rc == 3, out)
    check("SIGUSR1: a checkpoint is left", os.path.exists(os.path.join(work, "run", "checkpoint.h5")), out)
    check("SIGUSR1: the message says how to resume", "--restart" in out, out)
    rc, out = run(2, toml, "--restart")
    check("--restart after SIGUSR1 completes", rc == 0, out)
    got = fingerprint(work)
    check("after SIGUSR1 + --restart: bitwise equal to the uninterrupted run", got[:2] == ref[:2], f"{got} vs {ref}")


def test_ranks():
    _, work, toml, rc, out = stopped_run("ranks")
    check("2-rank run stopped by SIGUSR1", rc == 3, out)
    for ranks in (1, 4):
        w = os.path.join(a.work, f"ranks-to-{ranks}")
        shutil.rmtree(w, ignore_errors=True)
        shutil.copytree(work, w)
        rc, out = run(ranks, os.path.join(w, "input.toml"), "--restart")
        check(f"restart at {ranks} ranks completes", rc == 0, out)
        with h5py.File(os.path.join(w, "run", "results.h5"), "r") as f:
            hist = f["history/epoch"][...]
            ok = list(hist) == list(range(6)) and int(f.attrs["ranks"]) == ranks
            finite = all(np.isfinite(f["history"][k][...]).all() for k in f["history"])
        check(f"restart at {ranks} ranks: full history, finite losses", ok and finite, str(hist))


def two_epochs(name):
    """A finished 2-epoch run in its own folder, with its checkpoints."""
    work = os.path.join(a.work, name)
    toml = setup(work)
    rc, out = run(2, toml, "--set", "train.epochs=2")
    check("2-epoch run", rc == 0, out)
    return work, toml


def test_corrupt():
    work, toml = two_epochs("corrupt")
    ck = os.path.join(work, "run", "checkpoint.h5")
    with h5py.File(ck, "r") as f:
        off = f["params"].id.get_offset()
    with open(ck, "r+b") as f:
        f.seek(off + 8)
        f.write(b"\xde\xad\xbe\xef")
    rc, out = run(2, toml, "--restart", "--set", "train.epochs=3")
    check("flipped bytes: warning names file and dataset, run goes on from the previous one",
          rc == 0 and "checkpoint.h5" in out and "/params" in out and "checkpoint.prev.h5" in out, out)
    for name in ("checkpoint.h5", "checkpoint.prev.h5"):
        with open(os.path.join(work, "run", name), "r+b") as f:
            f.truncate(200)
    rc, out = run(2, toml, "--restart")
    check("both damaged: exit 2, both named", rc == 2 and "checkpoint.prev.h5" in out, out)


def test_diverge():
    work, toml = two_epochs("diverge")
    ck = os.path.join(work, "run", "checkpoint.h5")
    before = open(ck, "rb").read()
    rc, out = run(2, toml, "--restart", "--set", "train.epochs=3", "--set", "train.lr=1e30")
    check("divergence: exit code 4 naming epoch and step", rc == 4 and "epoch" in out and "step" in out, out)
    with h5py.File(ck, "r") as f:
        finite = np.isfinite(f["params"][...]).all()
    check("divergence: the checkpoint holds finite weights", finite)
    check("divergence: last good checkpoint kept", open(ck, "rb").read() == before or finite)


def test_lock():
    work = os.path.join(a.work, "lock")
    toml = setup(work)
    p = start(1, toml, "--set", "train.epochs=50")
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(work, "run", ".dynae-mpi.lock")) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    rc, out = run(1, toml, "--restart")
    kill_job(p, toml)
    check("a folder in use is refused with exit 2", rc == 2 and "in use" in out, out)
    rc, out = run(1, toml, "--restart", "--set", "train.epochs=1")
    check("the lock of a killed run does not block a restart", rc == 0, out)


os.makedirs(a.work, exist_ok=True)
globals()["test_" + a.what]()
print(f"{len(failures)} failed" if failures else f"restart {a.what}: all checks passed")
sys.exit(1 if failures else 0)
