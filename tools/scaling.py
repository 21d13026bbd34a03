#!/usr/bin/env python3
"""Strong and weak scaling of dynae-mpi: seconds per epoch, speed-up and efficiency per rank count,
where the time goes (-log_view phases), and optionally the time to solution.

    /usr/bin/python3 tools/scaling.py inputs/three-well.toml --ranks 1,2,4 --mode strong \\
        --repeats 3 --epochs 8 --json strong.json --plot strong.png

Runs `mpiexec -n P dynae-mpi INPUT --set train.epochs=E --set output.dir=...` for every P of
--ranks, --repeats times, interleaving the rank counts (1, 2, 4, 1, 2, 4, ...) so that slow periods
of a shared machine fall on all of them alike.

  --mode strong  the same data at every rank count (efficiency = speed-up / (P / P0));
  --mode weak    the data grow with the rank count: at P ranks data.input holds P copies of the
                 input's trajectories (P / P0 times the pairs), so each rank keeps the same share
                 (efficiency = t(P0) / t(P)).

Each run's epoch times come from its results.h5 (/history/seconds: the epoch's wall time on rank 0,
without the results.h5 refresh that follows it); epochs before --skip are left out (the warm-up
epoch has no clustering). The first run of every rank count also writes -log_view, whose dynae-mpi
events (the maximum over ranks of each phase's seconds, per epoch) come with the table.

Time to solution (--truth, or --plateau): one more run per rank count, of --epochs epochs, checked
every --eval-every epochs. With --truth FILE:DATASET (one per trajectory of the input) the run is
made in segments (a run of k epochs, then --restart with train.epochs = k + eval_every, ...; a
restart continues bitwise, so the segments change nothing) and after each segment the latent is
scored against the truth (tools/evaluate.py's R^2 and singular-value ratio); the solution is the
first epoch at which the worst R^2 >= --target-r2 and the ratio <= --target-isometry. Without a
truth, --plateau TOL takes the first epoch whose test loss (L_rec + beta L_sw) is within TOL
(relative) of the best test loss of the run. Reported: the epochs and the seconds (sum of the
epoch times up to it) to the solution, per rank count.

Extra arguments after "--" go to dynae-mpi (e.g. -- --set loss.beta=5). Rank counts above the
machine's cores run oversubscribed and are marked as such. Exit codes: 0 done, 1 a run failed,
2 bad arguments.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_ranks(text):
    try:
        ranks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("--ranks takes a comma-separated list of integers, e.g. 1,2,4")
    if not ranks or min(ranks) < 1:
        raise argparse.ArgumentTypeError("--ranks needs at least one rank count, all >= 1")
    return ranks


def read_input(path):
    import tomllib
    with open(path, "rb") as f:
        return tomllib.load(f)


def toml_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def weak_inputs(args, ranks):
    """--set arguments that give P / P0 copies of the input's trajectories (and targets)."""
    if args.mode != "weak":
        return []
    copies = ranks // args.base_ranks
    base = os.path.dirname(os.path.abspath(args.input))
    out = []
    for key in ("input", "target"):
        entries = args.config.get("data", {}).get(key, [])
        if not entries:
            continue
        # relative paths are relative to the input file: make them absolute for --set
        absolute = [e if os.path.isabs(e.rsplit(":", 1)[0]) else os.path.join(base, e) for e in entries]
        out += ["--set", "data.%s=[%s]" % (key, ", ".join(toml_string(e) for e in absolute * copies))]
    return out


def mpi_command(args, ranks):
    cmd = [args.mpiexec, "-n", str(ranks)]
    launcher = os.path.basename(args.mpiexec)
    if args.oversubscribe or (launcher in ("mpiexec", "mpirun") and ranks > (os.cpu_count() or 1)):
        cmd.append("--oversubscribe")
    return cmd


def run_program(args, ranks, outdir, epochs, extra=()):
    cmd = mpi_command(args, ranks) + [args.program, args.input, "--set", "train.epochs=%d" % epochs,
                                      "--set", "output.dir=%s" % toml_string(outdir), "--set", "output.quiet=true"]
    cmd += weak_inputs(args, ranks) + list(extra) + args.extra
    env = dict(os.environ)
    if os.geteuid() == 0:  # Open MPI refuses root without these
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout)
        raise RuntimeError("%s exited with %d" % (" ".join(cmd), proc.returncode))
    return proc.stdout


def history(results):
    import h5py
    with h5py.File(results, "r") as f:
        h = {k: [float(v) for v in f["history"][k][:]] for k in f["history"]}
    return h


def log_view_phases(path, epochs):
    """dynae-mpi's events of a -log_view file: {name: max-over-ranks seconds per epoch}."""
    phases = {}
    if not os.path.exists(path):
        return phases
    with open(path) as f:
        for line in f:
            w = line.split()
            # Event  Count(max) ratio  Time(max) ratio ...
            if len(w) >= 5 and re.fullmatch(r"Dy[A-Za-z0-9]+", w[0]) and w[1].isdigit():
                try:
                    phases[w[0]] = float(w[3]) / epochs
                except ValueError:
                    pass
    return phases


def time_to_solution(args, ranks, work):
    """Epochs and seconds to the quality target for one run at `ranks`."""
    out = os.path.join(work, "tts-p%d" % ranks)
    shutil.rmtree(out, ignore_errors=True)
    if args.truth is None:
        run_program(args, ranks, out, args.epochs)
        h = history(os.path.join(out, "results.h5"))
        beta = float(args.config.get("loss", {}).get("beta", 10.0))
        loss = [r + beta * s for r, s in zip(h["loss_rec_test"], h["loss_sw_test"])]
        best = min(loss[args.skip:]) if len(loss) > args.skip else min(loss)
        for e in range(args.skip, len(loss)):
            if loss[e] <= best * (1 + args.plateau):
                return {"epochs": e + 1, "seconds": sum(h["seconds"][:e + 1]), "criterion": "test loss within %g of its best" % args.plateau,
                        "test_loss": loss[e]}
        return None
    sys.path.insert(0, HERE)
    import evaluate as ev
    truth = args.truth * (ranks // args.base_ranks if args.mode == "weak" else 1)
    done, first = 0, True
    while done < args.epochs:
        done = min(args.epochs, done + args.eval_every if not first else max(args.eval_every, args.skip + 1))
        run_program(args, ranks, out, done, () if first else ("--restart",))
        first = False
        ns = argparse.Namespace(results=os.path.join(out, "results.h5"), truth=truth, latent_group="latent")
        latent, tr, _ = ev.load(ns)
        r = ev.evaluate(latent, tr)
        if r["r2_worst"] >= args.target_r2 and r["sv_ratio"] <= args.target_isometry:
            h = history(os.path.join(out, "results.h5"))
            return {"epochs": done, "seconds": sum(h["seconds"]),
                    "criterion": "R^2 >= %g, ratio <= %g" % (args.target_r2, args.target_isometry), "r2_worst": r["r2_worst"],
                    "sv_ratio": r["sv_ratio"]}
    return None


def plot(path, args, summary):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ranks = args.ranks
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    sec = [summary[r]["median_seconds_per_epoch"] for r in ranks]
    ax[0].plot(ranks, sec, "o-")
    ax[0].set(xlabel="ranks", ylabel="seconds per epoch", title="%s scaling: time" % args.mode, xscale="log",
              yscale="log")
    sp = [summary[r]["speedup"] for r in ranks]
    ax[1].plot(ranks, sp, "o-", label="measured")
    if args.mode == "strong":
        ax[1].plot(ranks, [r / ranks[0] for r in ranks], "k--", lw=0.8, label="ideal")
    ax[1].set(xlabel="ranks", ylabel="speed-up" if args.mode == "strong" else "t(P0) / t(P)", xscale="log")
    ax[1].legend()
    ax[2].plot(ranks, [summary[r]["efficiency"] for r in ranks], "o-")
    ax[2].axhline(1, color="k", ls="--", lw=0.8)
    ax[2].set(xlabel="ranks", ylabel="efficiency", ylim=(0, 1.2), xscale="log")
    for a in ax:
        a.set_xticks(ranks)
        a.set_xticklabels([str(r) + ("*" if summary[r]["oversubscribed"] else "") for r in ranks])
    fig.suptitle("dynae-mpi %s scaling, %s (* oversubscribed)" % (args.mode, os.path.basename(args.input)))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv):
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("input", help="the input file (TOML)")
    p.add_argument("--ranks", type=parse_ranks, default=[1, 2], help="rank counts, e.g. 1,2,4 (default 1,2)")
    p.add_argument("--mode", choices=["strong", "weak"], default="strong",
                   help="strong: fixed data; weak: P/P0 copies of the trajectories at P ranks (default strong)")
    p.add_argument("--repeats", type=int, default=3, help="runs per rank count (default 3)")
    p.add_argument("--epochs", type=int, default=8, help="epochs per run (default 8)")
    p.add_argument("--skip", type=int, default=2, help="leading epochs left out (default 2: warm-up, first)")
    p.add_argument("--program", default=os.path.join(HERE, "..", "build", "dynae-mpi"),
                   help="the dynae-mpi executable (default build/dynae-mpi)")
    p.add_argument("--mpiexec", default="mpiexec")
    p.add_argument("--oversubscribe", action="store_true", help="always pass --oversubscribe")
    p.add_argument("--json", help="also write the table to this file")
    p.add_argument("--plot", help="also draw seconds per epoch, speed-up and efficiency to this PNG")
    p.add_argument("--truth", action="append", help="FILE:DATASET of the true coordinates, one per trajectory "
                   "(repeat): measure the time to reach --target-r2 and --target-isometry")
    p.add_argument("--target-r2", type=float, default=0.995, help="time to solution: worst R^2 (default 0.995)")
    p.add_argument("--target-isometry", type=float, default=1.10,
                   help="time to solution: largest singular-value ratio (default 1.10)")
    p.add_argument("--eval-every", type=int, default=5, help="time to solution: epochs between checks (default 5)")
    p.add_argument("--plateau", type=float, help="time to solution without a truth: relative distance of the "
                   "test loss from its best value, e.g. 0.02")
    p.add_argument("--base-ranks", type=int, help="weak mode: the rank count that holds one copy of the data "
                   "(default: the first of --ranks; set it when each job of a series measures one rank count)")
    p.add_argument("--collect", nargs="+", metavar="JSON", help="instead of running: merge the --json tables of "
                   "several jobs (one rank count each, e.g. jobs/scaling.slurm) into one table, --json and --plot")
    if "--collect" in argv:  # the input file is not needed then
        argv = ["-"] + argv
    args = p.parse_args(argv)
    if args.collect:
        return collect(args)
    args.extra = extra
    if args.repeats < 1 or args.epochs <= args.skip:
        p.error("need --repeats >= 1 and --epochs > --skip")
    if args.eval_every < 1 or (args.plateau is not None and args.plateau < 0):
        p.error("need --eval-every >= 1 and --plateau >= 0")
    args.base_ranks = args.base_ranks or args.ranks[0]
    if args.mode == "weak" and (args.base_ranks < 1 or any(r % args.base_ranks for r in args.ranks)):
        p.error("--mode weak needs every rank count to be a multiple of --base-ranks (%d)" % args.base_ranks)
    if not os.path.isfile(args.input):
        p.error("no input file %s" % args.input)
    if not os.access(args.program, os.X_OK):
        p.error("no executable %s (build first, or give --program)" % args.program)
    try:
        args.config = read_input(args.input)
    except Exception as e:  # tomllib's errors name the line
        p.error("cannot read %s: %s" % (args.input, e))

    cores = os.cpu_count() or 1
    work = tempfile.mkdtemp(prefix="dynae-scaling-")
    per_run = {r: [] for r in args.ranks}
    phases = {}
    tts = {}
    try:
        for rep in range(args.repeats):
            for r in args.ranks:
                out = os.path.join(work, "p%d-r%d" % (r, rep))
                logv = os.path.join(work, "log-p%d.txt" % r)
                run_program(args, r, out, args.epochs, ("-log_view", ":" + logv) if rep == 0 else ())
                sec = history(os.path.join(out, "results.h5"))["seconds"][args.skip:]
                per_run[r].append(sec)
                if rep == 0:
                    phases[r] = log_view_phases(logv, args.epochs)
                print("run %d, %d rank%s: median %.4f s/epoch over %d epochs" %
                      (rep + 1, r, "" if r == 1 else "s", statistics.median(sec), len(sec)), flush=True)
                shutil.rmtree(out, ignore_errors=True)
        if args.truth is not None or args.plateau is not None:
            for r in args.ranks:
                tts[r] = time_to_solution(args, r, work)
    except RuntimeError as e:
        print("scaling: %s" % e, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary = {}
    for r in args.ranks:
        every = [s for run in per_run[r] for s in run]
        summary[r] = {"median_seconds_per_epoch": statistics.median(every),
                      "run_medians": [statistics.median(x) for x in per_run[r]],
                      "oversubscribed": os.path.basename(args.mpiexec) in ("mpiexec", "mpirun") and r > cores,
                      "phases_seconds_per_epoch": phases.get(r, {}), "time_to_solution": tts.get(r)}
    report(args, summary, cores)
    return 0


def relate(args, summary):
    """Speed-up and efficiency of every rank count against the first one."""
    p0 = args.ranks[0]
    base = summary[p0]["median_seconds_per_epoch"]
    for r in args.ranks:
        s = summary[r]
        s["speedup"] = base / s["median_seconds_per_epoch"]
        s["efficiency"] = s["speedup"] / (r / p0) if args.mode == "strong" else s["speedup"]


def collect(args):
    """Merges the tables of single-rank-count jobs into one."""
    summary, cores, mode, inputs = {}, None, None, set()
    for path in args.collect:
        try:
            with open(path) as f:
                t = json.load(f)
        except (OSError, ValueError) as e:
            print("scaling: cannot read %s: %s" % (path, e), file=sys.stderr)
            return 2
        if mode is not None and t["mode"] != mode:
            print("scaling: %s is a %s table, the others %s" % (path, t["mode"], mode), file=sys.stderr)
            return 2
        mode, cores = t["mode"], t.get("cores")
        inputs.add(t["input"])
        for r, s in t["ranks"].items():
            summary[int(r)] = s
    args.mode, args.input, args.ranks = mode, ", ".join(sorted(inputs)), sorted(summary)
    args.epochs = max(t.get("epochs", 0) for t in [json.load(open(p)) for p in args.collect])
    args.skip = 0
    report(args, summary, cores)
    return 0


def report(args, summary, cores):
    relate(args, summary)
    p0 = args.ranks[0]
    print("%s scaling of %s (%s cores per node; * = oversubscribed)" % (args.mode, args.input, cores))
    print("ranks  s/epoch (median)  speed-up over %d rank%s  efficiency  run medians" % (p0, "" if p0 == 1 else "s"))
    for r in args.ranks:
        s = summary[r]
        print("%5d  %16.4f  %22.3f  %10.3f  %s%s" % (r, s["median_seconds_per_epoch"], s["speedup"], s["efficiency"],
                                                    " ".join("%.4f" % x for x in s["run_medians"]),
                                                    "  *" if s["oversubscribed"] else ""))
    names = sorted({n for r in args.ranks for n in summary[r]["phases_seconds_per_epoch"]})
    if names:
        print("seconds per epoch by phase (-log_view, maximum over ranks, first run):")
        print("%-16s" % "phase" + "".join("%10s" % ("P=%d" % r) for r in args.ranks))
        for n in names:
            print("%-16s" % n + "".join("%10.4f" % summary[r]["phases_seconds_per_epoch"].get(n, 0.0)
                                        for r in args.ranks))
    tts = {r: summary[r].get("time_to_solution") for r in args.ranks if summary[r].get("time_to_solution")}
    if tts or getattr(args, "truth", None) or getattr(args, "plateau", None) is not None:
        print("time to solution:")
        for r in args.ranks:
            t = tts.get(r)
            print("%5d ranks: %s" % (r, "not reached in %d epochs" % args.epochs if t is None else
                                     "%d epochs, %.2f s (%s)" % (t["epochs"], t["seconds"], t["criterion"])))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"input": args.input, "mode": args.mode, "epochs": args.epochs, "skip": args.skip,
                       "cores": cores, "ranks": summary}, f, indent=1)
    if args.plot:
        plot(args.plot, args, summary)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
