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
            checkpoint untouched; also when the update of an epoch's last step overflows the weights.
  lock      a second run on a folder in use is refused (exit 2); --restart waits up to 30 s for a
            lock held on this host (a killed job's ranks outlive mpirun briefly), not for one held
            elsewhere; a stop signal during the wait ends the run with exit 3, nothing written.
  shape     a restart whose input shapes the weights otherwise than the checkpoint's (widths of
            equal parameter count, latent_dim, diffusion, features, precision) exits 2 naming the
            key and both values; keys that may change on a restart do not stop it.
  refresh   results.h5 is refreshed with step and signal checkpoints: its latent is the encoder of
            the checkpoint's weights.
  warmup    step checkpoints are written in the warm-up: a run that then fails at its first
            clustering leaves them, and --restart continues inside epoch 0; without
            checkpoint_steps such a run leaves nothing.
"""
import argparse, fcntl, hashlib, os, random, re, shutil, signal, socket, subprocess, sys, threading, time
import struct
import h5py
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("what", choices=["kill", "signal", "ranks", "corrupt", "diverge", "lock", "shape", "refresh", "warmup"])
ap.add_argument("--exe", required=True)
ap.add_argument("--other-exe", help="the program built in the other precision (shape)")
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
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:  # mpiexec has ended already
        pass
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


def stop_with_usr1(ranks, toml, work, fraction, elapsed):
    """SIGUSR1 once training has started (its first checkpoint is committed): never while the
    program is still starting up, and always before it ends, however loaded the machine (the
    fraction of the reference's time is no longer waited for)."""
    p = start(ranks, toml)
    # Training has started (its first checkpoint is there): signal now, however fast this
    # machine runs it, so that the stop always lands inside the run.
    wait_for_commits(work, p, 1, 4 * elapsed + 60)
    p.send_signal(signal.SIGUSR1)  # mpirun forwards SIGUSR1 to every rank
    out, _ = p.communicate(timeout=600)
    return p.returncode, out


def stopped_run(name):
    """The uninterrupted 2-rank reference, then the same run in its own folder stopped half-way by
    SIGUSR1."""
    ref, elapsed = reference(2)
    work = os.path.join(a.work, name)
    toml = setup(work)
    rc, out = stop_with_usr1(2, toml, work, 0.5, elapsed)
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


def checkpoint_bytes(work):
    """The bytes of both checkpoint files (None for a missing one)."""
    got = []
    for name in ("checkpoint.h5", "checkpoint.prev.h5"):
        path = os.path.join(work, "run", name)
        got.append(open(path, "rb").read() if os.path.exists(path) else None)
    return got


def test_diverge():
    work, toml = two_epochs("diverge")
    ck = os.path.join(work, "run", "checkpoint.h5")
    before = checkpoint_bytes(work)
    rc, out = run(2, toml, "--restart", "--set", "train.epochs=3", "--set", "train.lr=1e30")
    check("divergence: exit code 4 naming epoch and step", rc == 4 and "epoch" in out and "step" in out, out)
    with h5py.File(ck, "r") as f:
        finite = np.isfinite(f["params"][...]).all()
    check("divergence: the checkpoint holds finite weights", finite)
    check("divergence: last good checkpoint kept (both files unchanged)", checkpoint_bytes(work) == before)
    # One step per epoch (1024 pairs per rank, some 2400 training pairs at 2 ranks), so that the step
    # whose update overflows the weights (lr 1e308 overflows in single and double precision) is
    # the last of its epoch: the end-of-epoch checkpoint must not be where it shows.
    work = os.path.join(a.work, "diverge-last")
    toml = setup(work)
    one_step = ["--set", "train.batch_size=1024", "--set", "data.test_fraction=0.8"]
    rc, out = run(2, toml, "--set", "train.epochs=2", *one_step)
    check("one-step epochs: 2-epoch run", rc == 0, out)
    before = checkpoint_bytes(work)
    rc, out = run(2, toml, "--restart", "--set", "train.epochs=3", "--set", "train.lr=1e308", *one_step)
    check("overflow on an epoch's last step: exit code 4 naming epoch 2, step 0",
          rc == 4 and re.search(r"diverged: epoch 2, step 0: .*not finite", out), out)
    check("overflow on an epoch's last step: last good checkpoint kept", checkpoint_bytes(work) == before)


class Holder:
    """Holds the run lock of work/run from this process, as a run on host would (its line written
    as the program writes it), and lets it go after release_after seconds (None: at release())."""

    def __init__(self, work, host=None, release_after=None):
        os.makedirs(os.path.join(work, "run"), exist_ok=True)
        self.fd = os.open(os.path.join(work, "run", ".dynae-mpi.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"host {host or socket.gethostname()}, pid {os.getpid()}, since now\n".encode(), 0)
        self.timer = threading.Timer(release_after, self.release) if release_after else None
        if self.timer:
            self.timer.start()

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # drops the record lock
            self.fd = None


def timed_run(ranks, toml, *extra):
    t0 = time.time()
    rc, out = run(ranks, toml, *extra)
    return rc, out, time.time() - t0


def test_lock():
    work = os.path.join(a.work, "lock")
    toml = setup(work)
    p = start(1, toml, "--set", "train.epochs=50")
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(work, "run", ".dynae-mpi.lock")) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    rc, out = run(1, toml)
    kill_job(p, toml)
    check("a folder in use is refused with exit 2", rc == 2 and "in use" in out, out)
    rc, out = run(1, toml, "--restart", "--set", "train.epochs=1")
    check("the lock of a killed run does not block a restart", rc == 0, out)

    # --restart and a lock held on this host: waited for, announced, then taken once released.
    work = os.path.join(a.work, "lock-wait")
    toml = setup(work)
    h = Holder(work, release_after=3)
    rc, out, took = timed_run(1, toml, "--restart", "--set", "train.epochs=1")
    h.release()
    check("--restart waits for a lock held on this host, then runs", rc == 0 and took >= 2.5 and
          "waiting up to 30 s" in out and "the lock was released after" in out, f"{took:.1f} s\n{out}")
    # ... but not for ever: refused with exit 2 after the 30 s, saying so.
    h = Holder(work)
    rc, out, took = timed_run(1, toml, "--restart", "--set", "train.epochs=1")
    h.release()
    check("--restart gives up after 30 s: exit 2", rc == 2 and 29 <= took < 120 and
          "still held after waiting 30 s" in out, f"{took:.1f} s\n{out}")
    # A lock held on another host is not waited for (that run is alive), nor is one without --restart.
    h = Holder(work, host="elsewhere.invalid")
    rc, out, took = timed_run(1, toml, "--restart", "--set", "train.epochs=1")
    h.release()
    check("a lock held on another host: refused at once", rc == 2 and took < 20 and "in use" in out and
          "waiting" not in out, f"{took:.1f} s\n{out}")
    # A stop requested before training has started (here: during the wait) ends the run with exit 3
    # and writes nothing; the SLURM script requeues it and the requeued job starts from the beginning.
    work = os.path.join(a.work, "lock-stop")
    toml = setup(work)
    h = Holder(work)
    p = start(2, toml, "--restart")
    text = ""
    deadline = time.time() + 120
    while "waiting up to" not in text and time.time() < deadline and p.poll() is None:
        text += p.stdout.readline()
    p.send_signal(signal.SIGUSR1)
    rest, _ = p.communicate(timeout=120)
    h.release()
    out = text + rest
    check("a stop before training: exit 3, nothing written", p.returncode == 3 and "nothing was written" in out and
          sorted(os.listdir(os.path.join(work, "run"))) == [".dynae-mpi.lock"], out)

    # The real case: mpirun killed alone (its ranks live on for a moment), then --restart at once.
    work = os.path.join(a.work, "lock-kill")
    toml = setup(work)
    p = start(2, toml, "--set", "train.epochs=50")
    wait_for_commits(work, p, 1, 300)
    os.killpg(p.pid, signal.SIGKILL)  # mpiexec's group only: the ranks have sessions of their own
    p.wait()
    rc, out = run(2, toml, "--restart", "--set", "train.epochs=1")
    kill_job(p, toml)
    check("--restart right after mpirun was killed: runs", rc == 0 and "# resuming from" in out, out)


def extra_data(work):
    """restart-data.h5's frames with a third feature (frames, 3), and a 3-feature target."""
    data = os.path.join(os.path.dirname(work), "restart-data.h5")
    path = os.path.join(work, "three-features.h5")
    with h5py.File(data, "r") as f:
        x = f["observed"][...]
    with h5py.File(path, "w") as f:
        f["observed3"] = np.column_stack([x, x[:, :1] * x[:, 1:2]]).astype(x.dtype)
        f["target3"] = np.column_stack([x, x[:, :1] ** 2]).astype(x.dtype)
    return path


def fnv(h, data):
    """The checkpoint digest (64-bit FNV-1a), continued from h."""
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def strip_shape(path):
    """Makes path a checkpoint as written before the shape table existed: without /shape and its
    length, with the list of arrays and the root digest rewritten to match."""
    init = 0xcbf29ce484222325
    with h5py.File(path, "r+") as f:
        names = [n for n in f.attrs["arrays"].decode().split("\n") if n and n not in ("shape", "@shape_bytes")]
        del f["shape"]
        del f.attrs["shape_bytes"]
        entries = sorted((n.encode(), fnv(init, struct.pack("<q", int(f.attrs[n[1:]]))) if n[0] == "@" else
                          int(f[n].attrs["digest"])) for n in names)
        h = init
        for n, d in entries:
            h = fnv(fnv(h, n + b"\0"), struct.pack("<Q", d))
        text = "".join(n + "\n" for n in names).encode() + b"\0"
        f.attrs.create("arrays", np.array(text, dtype=f"S{len(text)}"))
        f.attrs.create("digest", np.uint64(h), dtype="uint64")


def test_shape():
    work = os.path.join(a.work, "shape")
    toml = setup(work)
    extra = extra_data(work)
    # D = d = 2: encoder [32, 16] and [16, 32] both have 658 parameters.
    rc, out = run(1, toml, "--set", "train.epochs=2", "--set", "model.encoder=[32, 16]")
    check("2-epoch run with encoder [32, 16]", rc == 0, out)
    before = checkpoint_bytes(work)
    base = ["--restart", "--set", "train.epochs=3", "--set", "model.encoder=[32, 16]"]
    cases = [
        ("model.encoder", ["--set", "model.encoder=[16, 32]"], "[32, 16]", "[16, 32]"),
        ("model.decoder", ["--set", "model.decoder=[32, 32]"], "[32, 32, 32]", "[32, 32]"),
        ("model.prior", ["--set", "model.prior=[32, 16]"], "[32, 32]", "[32, 16]"),
        ("model.latent_dim", ["--set", "model.latent_dim=3"], "2", "3"),
        ("model.diffusion", ["--set", "model.diffusion=learned"], "constant", "learned"),
        ("data.input", ["--set", f'data.input=["{extra}:/observed3"]'], "2 features", "3 features"),
        ("data.target", ["--set", f'data.target=["{extra}:/target3"]'], "2 features", "3 features"),
    ]
    for key, change, old, new in cases:
        rc, out = run(1, toml, *base, *change)
        said = f"{key}: the checkpoint was written with {old}, this input gives {new}"
        check(f"restart with another {key}: exit 2 naming it", rc == 2 and said in out, out)
    if a.other_exe:
        p = subprocess.run([a.mpiexec, "-n", "1", "--oversubscribe", a.other_exe, toml, *base], capture_output=True,
                           text=True, timeout=600)
        out = p.stdout + p.stderr
        single = "single" in subprocess.run([a.exe, "--version"], capture_output=True, text=True).stdout
        said = "precision: the checkpoint was written with %s, this build has %s" % (
            ("single", "double") if single else ("double", "single"))
        check("restart in the other precision: exit 2 naming it", p.returncode == 2 and said in out, out)
    check("refused restarts write nothing", checkpoint_bytes(work) == before)
    # What may change on a restart does not stop it.
    rc, out = run(1, toml, *base, "--set", "train.lr=5e-4", "--set", "train.prior_lr=5e-4", "--set", "loss.beta=5",
                  "--set", "loss.projections=20", "--set", "cluster.d_min=4", "--set", "cluster.gamma=1.5",
                  "--set", "output.checkpoint_steps=5", "--set", "train.batch_size=48")
    check("restart with other learning rates, loss, clustering, batch and output keys runs", rc == 0 and
          "# resuming from" in out, out)
    # Checkpoints from before the table: a warning, and the parameter counts and latent_dim checked.
    for name in ("checkpoint.h5", "checkpoint.prev.h5"):
        strip_shape(os.path.join(work, "run", name))
    rc, out = run(1, toml, *base, "--set", "model.latent_dim=3")
    check("a checkpoint without the table: another latent_dim still refused",
          rc == 2 and "records no model shape" in out and "latent_dim 2" in out, out)
    rc, out = run(1, toml, *base, "--set", "train.epochs=4")
    check("a checkpoint without the table: a warning, and the run goes on",
          rc == 0 and "records no model shape" in out and "# resuming from" in out, out)


def encoder_latent(ck, frames):
    """The latent of frames under the encoder weights of checkpoint ck (its shape table gives the
    widths), in double precision."""
    with h5py.File(ck, "r") as f:
        params = f["params"][...].astype(np.float64)
        table = dict(line.split("=", 1) for line in bytes(f["shape"][...]).decode().splitlines())
        if "input_mean" in f:  # data.standardize: the encoder sees (x - mean) / scale
            frames = (frames - f["input_mean"][...]) / f["input_scale"][...]
    dims = [int(table["data.input"].split()[0])] + [int(w) for w in table["model.encoder"].strip("[]").split(",")] + \
        [int(table["model.latent_dim"])]
    h, off = frames.astype(np.float64), 0
    for l in range(len(dims) - 1):
        W = params[off:off + dims[l + 1] * dims[l]].reshape(dims[l + 1], dims[l])
        off += W.size
        b = params[off:off + dims[l + 1]]
        off += b.size
        h = h @ W.T + b
        if l < len(dims) - 2:
            h = np.maximum(h, 0)
    return h


def results_follow(work, names):
    """Whether results.h5's latent is the encoder of one of the named checkpoints' weights."""
    run_dir = os.path.join(work, "run")
    if not os.path.exists(os.path.join(run_dir, "results.h5")):
        return False, "no results.h5"
    data = os.path.join(os.path.dirname(work), "restart-data.h5")
    with h5py.File(data, "r") as f:
        x = f["observed"][...]
    with h5py.File(os.path.join(run_dir, "results.h5"), "r") as f:
        z = f["latent/traj0"][...].astype(np.float64)
    why = []
    for name in names:
        try:
            want = encoder_latent(os.path.join(run_dir, name), x)
        except (OSError, KeyError):  # missing, or a temporary file cut short by the kill
            continue
        err = np.abs(z - want).max() / (1 + np.abs(want).max())
        why.append(f"{name}: relative difference {err:.2e}")
        if err < 1e-5:
            return True, ", ".join(why)
    return False, ", ".join(why)


def test_refresh():
    work = os.path.join(a.work, "refresh")
    toml = setup(work)
    steps_only = ["--set", "output.checkpoint_every=0", "--set", "train.epochs=50"]
    # A stop signal's checkpoint (after a few step checkpoints, in epoch 0 or later).
    p = start(2, toml, *steps_only)
    wait_for_commits(work, p, 3, 600)
    p.send_signal(signal.SIGUSR1)
    out, _ = p.communicate(timeout=600)
    ok, why = results_follow(work, ["checkpoint.h5"])
    check("SIGUSR1: results.h5 holds the latent of the checkpoint's weights", p.returncode == 3 and ok,
          why + "\n" + out)
    # Step checkpoints: the run is killed after some; results.h5 follows the newest checkpoint (the
    # one before it when the kill came between the two writes, or the one still being renamed into
    # place in the background).
    p = start(2, toml, "--restart", *steps_only)
    wait_for_commits(work, p, 4, 600)
    kill_job(p, toml)
    ok, why = results_follow(work, ["checkpoint.h5", "checkpoint.prev.h5", "checkpoint.h5.tmp"])
    check("step checkpoints: results.h5 holds the latent of the newest checkpoints' weights", ok, why)


def test_warmup():
    # Step checkpoints every 7 steps (restart.toml), also in the warm-up; too many centres at the first
    # clustering is bad input (exit 2), but the warm-up's checkpoints stay.
    work = os.path.join(a.work, "warmup")
    toml = setup(work)
    crowded = ["--set", "cluster.d_min=1e-6", "--set", "cluster.max_centers=2"]
    rc, out = run(2, toml, *crowded)
    check("too many centres after the warm-up: exit 2", rc == 2 and "max_centers" in out, out)
    ck = os.path.join(work, "run", "checkpoint.h5")
    where = (-1, -1)
    if os.path.exists(ck):
        with h5py.File(ck, "r") as f:
            where = (int(f.attrs["epoch"]), int(f.attrs["step"]))
    check("the warm-up's step checkpoints are kept", where[0] == 0 and where[1] > 0 and where[1] % 7 == 0, str(where))
    rc, out = run(2, toml, "--restart", "--set", "train.epochs=2")
    check("--restart with the default d_min continues inside the warm-up",
          rc == 0 and f"epoch 0, step {where[1]}" in out, out)
    # Without step checkpoints nothing is written before the first clustering.
    work = os.path.join(a.work, "warmup-none")
    toml = setup(work)
    rc, out = run(2, toml, *crowded, "--set", "output.checkpoint_steps=0")
    check("without checkpoint_steps: exit 2 and nothing written", rc == 2 and not os.path.exists(
        os.path.join(work, "run")), out)


os.makedirs(a.work, exist_ok=True)
globals()["test_" + a.what]()
print(f"{len(failures)} failed" if failures else f"restart {a.what}: all checks passed")
sys.exit(1 if failures else 0)
