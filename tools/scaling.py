#!/usr/bin/env python3
"""Strong-scaling measurement: seconds per epoch at several rank counts, and the speed-up.

    /usr/bin/python3 tools/scaling.py inputs/three-well.toml --ranks 1,2 --repeats 3 --epochs 8

Runs `mpiexec -n P dynae-mpi INPUT --set train.epochs=E --set output.dir=...` for every P of
--ranks, --repeats times, interleaving the rank counts (1, 2, 1, 2, ...) so that slow periods of a
shared machine fall on all of them alike. Each run's epoch times come from its results.h5
(/history/seconds: the epoch's wall time on rank 0, without the results.h5 refresh that follows
it); epochs before --skip are left out (the warm-up epoch has no clustering). Prints, per rank
count, the median seconds per epoch over all kept epochs of all runs, each run's median, and the
speed-up of every rank count over the first one; --json FILE also writes them.

Extra arguments after "--" go to dynae-mpi (e.g. -- --set loss.beta=5). Exit codes: 0 done,
1 a run failed, 2 bad arguments.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile


def parse_ranks(text):
    try:
        ranks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("--ranks takes a comma-separated list of integers, e.g. 1,2,4")
    if not ranks or min(ranks) < 1:
        raise argparse.ArgumentTypeError("--ranks needs at least one rank count, all >= 1")
    return ranks


def epoch_seconds(results, skip):
    import h5py
    with h5py.File(results, "r") as f:
        sec = [float(s) for s in f["history"]["seconds"][:]]
    return sec[skip:]


def run_once(args, ranks, outdir):
    cmd = [args.mpiexec, "-n", str(ranks)]
    if args.oversubscribe:
        cmd.append("--oversubscribe")
    cmd += [args.program, args.input, "--set", "train.epochs=%d" % args.epochs,
            "--set", "output.dir=%s" % outdir, "--set", "output.quiet=true"] + args.extra
    env = dict(os.environ)
    if os.geteuid() == 0:  # Open MPI refuses root without these
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout)
        raise RuntimeError("%s exited with %d" % (" ".join(cmd), proc.returncode))
    return epoch_seconds(os.path.join(outdir, "results.h5"), args.skip)


def main(argv):
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("input", help="the input file (TOML)")
    p.add_argument("--ranks", type=parse_ranks, default=[1, 2], help="rank counts, e.g. 1,2,4 (default 1,2)")
    p.add_argument("--repeats", type=int, default=3, help="runs per rank count (default 3)")
    p.add_argument("--epochs", type=int, default=8, help="epochs per run (default 8)")
    p.add_argument("--skip", type=int, default=2, help="leading epochs left out (default 2: warm-up, first)")
    p.add_argument("--program", default=os.path.join(here, "..", "build", "dynae-mpi"),
                   help="the dynae-mpi executable (default build/dynae-mpi)")
    p.add_argument("--mpiexec", default="mpiexec")
    p.add_argument("--oversubscribe", action="store_true", help="pass --oversubscribe (more ranks than cores)")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    args.extra = extra
    if args.repeats < 1 or args.epochs <= args.skip:
        p.error("need --repeats >= 1 and --epochs > --skip")
    if not os.path.isfile(args.input):
        p.error("no input file %s" % args.input)
    if not os.access(args.program, os.X_OK):
        p.error("no executable %s (build first, or give --program)" % args.program)

    work = tempfile.mkdtemp(prefix="dynae-scaling-")
    per_run = {r: [] for r in args.ranks}
    try:
        for rep in range(args.repeats):
            for r in args.ranks:
                out = os.path.join(work, "p%d-r%d" % (r, rep))
                sec = run_once(args, r, out)
                per_run[r].append(sec)
                print("run %d, %d rank%s: median %.4f s/epoch over %d epochs" %
                      (rep + 1, r, "" if r == 1 else "s", statistics.median(sec), len(sec)), flush=True)
                shutil.rmtree(out, ignore_errors=True)
    except RuntimeError as e:
        print("scaling: %s" % e, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary = {}
    base = None
    for r in args.ranks:
        every = [s for run in per_run[r] for s in run]
        med = statistics.median(every)
        base = med if base is None else base
        summary[r] = {"median_seconds_per_epoch": med, "run_medians": [statistics.median(x) for x in per_run[r]],
                      "speedup": base / med}
    print("ranks  s/epoch (median)  speed-up over %d rank%s  run medians" % (args.ranks[0], "" if args.ranks[0] == 1 else "s"))
    for r in args.ranks:
        s = summary[r]
        print("%5d  %16.4f  %22.3f  %s" % (r, s["median_seconds_per_epoch"], s["speedup"],
                                            " ".join("%.4f" % x for x in s["run_medians"])))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"input": args.input, "epochs": args.epochs, "skip": args.skip, "ranks": summary}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
