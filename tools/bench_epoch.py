#!/usr/bin/python3
"""Seconds per training epoch of dynae-mpi against the method authors' PyTorch code, side by side,
one core each, on the same data with the same settings.

    /usr/bin/python3 tools/bench_epoch.py FILE:DATASET --reference DIR [--width 32] [--epochs 5]
                                          [--repeats 2] [--seed 0] [--out bench_epoch] [--set K=V ...]

The data are (frames, features), or images (frames, [channels,] 64, 64) as tools/gen_sprites.py
writes them; the reference reads a .npy written here from the dataset. Both codes train DynamicsAE
with the reference's example settings (tools/compare_models.py's DEFAULT_CONFIG: latent 2, lag 1,
test fraction 0.2, no standardisation, beta 10, 50 projections, gamma 2, lr 1e-3), `--batch` and
`--d-min`, and `--width`: for (frames, features) data the three hidden layers of the encoder and of
the decoder (fully connected nets); for images the width of the convolutional nets (model.network =
"conv", the reference's conv_encoder / deconv_decoder). The prior nets keep the reference's fixed
two hidden layers of 32 (its code has no setting for them). dynae-mpi runs on one rank, the
reference with one thread (OMP_NUM_THREADS=1).

One repeat starts the reference pinned to one core and, pinned to the other, dynae-mpi runs of
--epochs epochs back to back until the reference has finished (at least one), so that both codes
share the machine's conditions for the whole measurement; the next repeat swaps the cores. Per
epoch: dynae-mpi's /history/seconds (each epoch's wall time, the warm-up epoch included) and the
reference's own "Total training time" over its epochs; both leave out start-up and the final
results. Also reported: CPU seconds per run (user + system of the whole process tree, start-up
included). The ratio is the reference's median seconds per epoch over dynae-mpi's.

Output: a table on stdout and OUT/bench_epoch.json. Exit codes: 0 done, 1 a run failed, 2 bad
arguments or inputs.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evaluate  # noqa: E402  (FILE:DATASET reading)
from compare_models import MLP_SETTINGS, default_config, fail, load_data, reference_epoch_seconds  # noqa: E402
from md_study import REFERENCE_INI  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))


def arguments(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", metavar="FILE:DATASET", help="the trajectory, (frames, features)")
    p.add_argument("--reference", required=True, metavar="DIR", help="the method authors' code (DIR/main.py)")
    p.add_argument("--width", type=int, default=32, help="hidden width of the encoder's and decoder's three layers")
    p.add_argument("--epochs", type=int, default=5, help="epochs per run (both codes)")
    p.add_argument("--repeats", type=int, default=2, help="reference runs; the cores swap between them")
    p.add_argument("--batch", type=int, default=256, help="train.batch_size (both codes)")
    p.add_argument("--d-min", type=float, default=5.0, help="cluster.d_min (both codes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cores", default="0,1", help="the two cores to pin to")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="more --set options for dynae-mpi")
    p.add_argument("--out", default="bench_epoch", help="folder of the runs")
    p.add_argument("--exe", default=os.path.join(here, "..", "build", "dynae-mpi"), help="dynae-mpi executable")
    p.add_argument("--mpiexec", default="mpiexec")
    p.add_argument("--python", default="/usr/bin/python3", help="python with torch, for the reference")
    a = p.parse_args(argv)
    a.reference = os.path.abspath(a.reference)
    if not os.path.isfile(os.path.join(a.reference, "main.py")):
        p.error(f"--reference {a.reference}: no main.py there")
    if min(a.width, a.epochs, a.repeats, a.batch) < 1 or not a.d_min > 0:
        p.error("--width, --epochs, --repeats and --batch must be >= 1, --d-min > 0")
    try:
        a.cores = [int(c) for c in a.cores.split(",")]
    except ValueError:
        a.cores = []
    if len(a.cores) != 2 or a.cores[0] == a.cores[1]:
        p.error("--cores: two different core numbers, e.g. 0,1")
    return a


def start(cmd, cwd, log, env=None):
    fp = open(log, "w")
    return subprocess.Popen(cmd, cwd=cwd, stdout=fp, stderr=subprocess.STDOUT, env=env), fp


def finish(proc, fp, what, log, wait=True):
    """Waits for proc (or with wait=False only looks whether it has ended); returns its CPU seconds
    (user + system, its reaped descendants included), None while it still runs."""
    pid, status, ru = os.wait4(proc.pid, 0 if wait else os.WNOHANG)
    if pid == 0:
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)
    fp.close()
    if proc.returncode:
        fail(f"{what} failed with exit code {proc.returncode}; see {log}", 1)
    return ru.ru_utime + ru.ru_stime


def main(argv=None):
    a = arguments(argv)
    a.out = os.path.abspath(a.out)
    os.makedirs(a.out, exist_ok=True)
    dpath, dname, x, images = load_data(a.data)
    npy = os.path.join(a.out, "input.npy")
    w = a.width
    if images:  # the reference's conv nets take (frames, channels, 64, 64)
        np.save(npy, x.reshape(len(x), -1, 64, 64))
        nets = f'network = "conv"\nencoder = [{w}]\ndecoder = [{w}]'
    else:
        np.save(npy, np.asarray(x, dtype=np.float32))
        nets = f"encoder = [{w}, {w}, {w}]\ndecoder = [{w}, {w}, {w}]"
    config = os.path.join(a.out, "dynae.toml")
    with open(config, "w") as fp:
        fp.write(default_config(os.path.abspath(dpath) + ":" + dname, nets, MLP_SETTINGS[0], a.d_min, a.batch))
    one = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    dyn, ref, dyn_cpu, ref_cpu = [], [], [], []
    for r in range(a.repeats):
        cd, cr = (a.cores if r % 2 == 0 else a.cores[::-1])
        rdir = os.path.join(a.out, f"reference_{r}")
        os.makedirs(rdir, exist_ok=True)
        with open(os.path.join(rdir, "config.ini"), "w") as fp:
            ini = REFERENCE_INI.format(d=2, n1=w, n2=w, model="DynamicsAE", L=50, d_min=a.d_min, gamma=2.0,
                                       nu=0.0065, batch=a.batch, epochs=a.epochs, lr=1e-3, beta=10.0, npy=npy,
                                       seed=a.seed)
            if images:
                ini = ini.replace("= fc_encoder", "= conv_encoder").replace("= fc_decoder", "= deconv_decoder")
            fp.write(ini)
        rlog = os.path.join(rdir, "train.log")
        rproc, rfp = start(["taskset", "-c", str(cr), a.python, os.path.join(a.reference, "main.py"),
                            "-config", "config.ini"], rdir, rlog, one)
        k = 0
        while True:
            ddir = os.path.join(a.out, f"dynae_{r}_{k}")
            dlog = ddir + ".log"
            sets = ["--set", f"train.epochs={a.epochs}", "--set", f"train.seed={a.seed}",
                    "--set", f"output.dir={ddir}"]
            for s in a.set or []:
                sets += ["--set", s]
            dproc, dfp = start(["taskset", "-c", str(cd), a.mpiexec, "-n", "1", "--bind-to", "none", a.exe, config,
                                *sets], a.out, dlog, one)
            dyn_cpu.append(finish(dproc, dfp, "dynae-mpi", dlog))
            with evaluate.h5py.File(os.path.join(ddir, "results.h5"), "r") as f:
                dyn.extend(float(s) for s in f["history/seconds"][()])
            k += 1
            cpu = finish(rproc, rfp, "the reference", rlog, wait=False)
            if cpu is not None:
                break
        ref_cpu.append(cpu)
        ref.append(reference_epoch_seconds(rdir, a.epochs))
        if math.isnan(ref[-1]):
            fail(f"the reference wrote no training time under {rdir}/Results", 1)
        print(f"repeat {r}: reference on core {cr}: {ref[-1]:.3f} s/epoch; dynae-mpi on core {cd}: {k} runs, "
              f"median {statistics.median(dyn[-k * a.epochs:]):.4f} s/epoch", file=sys.stderr, flush=True)
    md, mr = statistics.median(dyn), statistics.median(ref)
    res = dict(data=a.data, features=int(x.shape[1]), frames=int(x.shape[0]), width=w, images=images,
               batch=a.batch, d_min=a.d_min, epochs=a.epochs,
               dynae_epoch_seconds=dyn, reference_epoch_seconds=ref, dynae_cpu_seconds_per_run=dyn_cpu,
               reference_cpu_seconds_per_run=ref_cpu, ratio_median=mr / md,
               cpu=cpu_name(), time=time.strftime("%Y-%m-%d %H:%M:%S"))
    with open(os.path.join(a.out, "bench_epoch.json"), "w") as fp:
        json.dump(res, fp, indent=2)
    nets = f"convolutional nets of width {w}" if images else f"encoder and decoder 3 x {w}"
    print(f"# {a.data}: {x.shape[0]} frames x {x.shape[1]} features; {nets}, prior 2 x 32, batch {a.batch}, "
          f"d_min {a.d_min}; {a.epochs} epochs per run; {res['cpu']}")
    print(f"{'code':<12} {'s/epoch median':>15} {'min':>9} {'max':>9} {'epochs':>7} {'CPU s/run':>10}")
    for name, v, c in (("dynae-mpi", dyn, dyn_cpu), ("reference", ref, ref_cpu)):
        print(f"{name:<12} {statistics.median(v):15.4f} {min(v):9.4f} {max(v):9.4f} {len(v):7d} "
              f"{statistics.median(c):10.2f}")
    print(f"reference / dynae-mpi, median seconds per epoch: {mr / md:.1f}x "
          f"(per repeat: {', '.join(f'{x / md:.1f}x' for x in ref)})")
    return 0


def cpu_name():
    """The CPU model, as /proc/cpuinfo names it."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
