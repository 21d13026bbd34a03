#!/usr/bin/env python3
"""Projects dynae-mpi's epoch time to clusters larger than this machine with SimGrid's SMPI.

    /usr/bin/python3 tools/smpi_projection.py --ranks 64,256,1024 --network ib --json ib.json

1. Measures, unless --measured gives a table of an earlier measurement: one run of the input
   (default inputs/three-well.toml) at 1 rank with -log_view, whose events give this machine's
   compute per step (DyLossGrad + DyOptimizer, per step) and per epoch (encoding, clustering,
   resampling, test losses, results and checkpoint); its checkpoint gives the gradient size.
2. Replays one epoch's communication at every rank count of --ranks with tools/smpi_replay.c
   (compiled with smpicc, run by smpirun on a generated platform): the data scatter, the per-step
   gradient sum of the real size (all ranks in one MPI_Allreduce, or the hierarchical way of
   -dy_exchange hier), with --batch global also the sliced Wasserstein's per-step exchange (the
   moves gathered, and beyond 8 ranks the rows' gradients reduce-scattered), the clustering's
   merge rounds and the bin counts. The measured compute is injected as it is; only messages are
   simulated.
3. Weak scaling: every rank keeps the pairs of the measured run (the data grow with the ranks);
   weak efficiency = T(1) / T(P). Strong scaling: the data of the smallest rank count of --ranks
   (its ranks x the measured pairs) shared by more ranks; strong efficiency = T(P0) P0 / (T(P) P).
   Steps per epoch are the measured run's (each latent bin ends with a partial batch), scaled with
   the pairs: per rank with train.batch = per_rank, over all ranks with global (each rank then
   computing 1/P of a step).

The simulated cluster (nodes of --cores-per-node cores, a non-blocking fat tree of links of the
network's bandwidth and latency, shared memory inside a node) is printed with the numbers, as are
all assumptions. --check-local replays the 2-rank gradient sum on one node of this machine's kind,
to set against tools/bench_sync's measured exchange (README, "Performance").

Output JSON (--json): {"network": ..., "assumptions": {...}, "rows": [{"ranks": P,
"seconds_per_epoch": ..., "weak_efficiency": ..., "strong_efficiency": ...}, ...]}.
Exit codes: 0 done, 1 a run or the simulation failed, 2 bad arguments (or SimGrid missing).
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
NETWORKS = {  # bandwidth in Gb/s, latency in us
    "ib": {"name": "InfiniBand-class", "gbit": 200.0, "lat_us": 1.0},
    "ethernet": {"name": "Ethernet-class", "gbit": 25.0, "lat_us": 10.0},
}
SHM = {"gbyte": 20.0, "lat_us": 0.3}  # inside a node: shared memory
STEP_EVENTS = ("DyLossGrad", "DyOptimizer")
# The data scatter is simulated with at most this many bytes per rank and scaled linearly, and
# only up to SCATTER_SIM_RANKS ranks: its P^2 messages at hundreds of ranks crash or stall SMPI's
# all-to-all (seen with SimGrid 3.32). It happens once per run, not per epoch.
SCATTER_SIM_BYTES = 256 << 10
SCATTER_SIM_RANKS = 64
SW_GATHER_MAX = 8  # DY_SWGLOBAL_GATHER_MAX: the global SW's gather way up to this many ranks
EPOCH_EVENTS = ("DyEncode", "DyCluster", "DyResample", "DyTestLoss", "DyTestLossAll", "DyIO", "DyCheckpoint")


def die(msg, code=2):
    print("smpi_projection: %s" % msg, file=sys.stderr)
    sys.exit(code)


def parse_ranks(text):
    try:
        ranks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError("--ranks takes a comma-separated list of integers, e.g. 64,256,1024")
    if not ranks or ranks[0] < 1:
        raise argparse.ArgumentTypeError("--ranks needs rank counts >= 1")
    return ranks


def log_view_events(path):
    """{event: (count, max seconds)} of a -log_view file."""
    ev = {}
    with open(path) as f:
        for line in f:
            w = line.split()
            if len(w) >= 5 and w[0].startswith("Dy") and w[1].isdigit():
                try:
                    ev[w[0]] = (int(w[1]), float(w[3]))
                except ValueError:
                    pass
    return ev


def measure(a, work):
    """This machine's compute, from one 1-rank run with -log_view."""
    import h5py
    out, logv = os.path.join(work, "measure"), os.path.join(work, "log.txt")
    cmd = [a.mpiexec, "-n", "1", a.program, a.input, "--set", "train.epochs=%d" % a.epochs,
           "--set", 'output.dir="%s"' % out, "--set", "output.quiet=true", "-log_view", ":" + logv]
    env = dict(os.environ)
    if os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        die("the measuring run failed (%s):\n%s" % (" ".join(cmd), (p.stdout + p.stderr)[-2000:]), 1)
    ev = log_view_events(logv)
    steps = ev.get("DyLossGrad", (0, 0))[0]
    if steps == 0:
        die("no DyLossGrad event in the -log_view output", 1)
    with h5py.File(os.path.join(out, "checkpoint.h5"), "r") as f:
        nparam = int(f.attrs["nparam"])
    with h5py.File(os.path.join(out, "results.h5"), "r") as f:
        import tomllib
        cfg = f.attrs["config"]
        cfg = tomllib.loads(cfg.decode() if isinstance(cfg, bytes) else cfg)
        bins = [int(b) for b in f["history/bins"][:]]
        frames = sum(f["latent"][k].shape[0] for k in f["latent"])
        D = int(f["reconstruction"][next(iter(f["reconstruction"]))].shape[1]) if "reconstruction" in f else 2
    train = cfg.get("train", {})
    test_fraction = float(cfg.get("data", {}).get("test_fraction", 0.2))
    return {
        "source": "1-rank run of %s, %d epochs, on this machine (%s)" % (a.input, a.epochs, os.uname().nodename),
        "step_seconds": sum(ev.get(e, (0, 0))[1] for e in STEP_EVENTS) / steps,
        "epoch_seconds": sum(ev.get(e, (0, 0))[1] for e in EPOCH_EVENTS) / a.epochs,
        "steps_per_epoch": steps / a.epochs,
        "batch_size": int(train.get("batch_size", 256)),
        "gradient_values": nparam + 5,
        "pairs": int(frames * (1 - test_fraction)),
        "features": D,
        "bins": max(bins) if bins else 100,
        "max_centers": int(cfg.get("cluster", {}).get("max_centers", 200)),
        "latent_dim": int(cfg.get("model", {}).get("latent_dim", 2)),
    }


def platform(path, nodes, cores, net):
    bw = net["gbit"] / 8.0
    with open(path, "w") as f:
        f.write("<?xml version='1.0'?>\n<!DOCTYPE platform SYSTEM \"https://simgrid.org/simgrid.dtd\">\n"
                "<platform version=\"4.1\">\n"
                "  <cluster id=\"c\" prefix=\"node-\" suffix=\"\" radical=\"0-%d\" speed=\"1Gf\" core=\"%d\"\n"
                "           bw=\"%gGBps\" lat=\"%gus\" bb_bw=\"%gGBps\" bb_lat=\"0us\"\n"
                "           loopback_bw=\"%gGBps\" loopback_lat=\"%gus\"/>\n</platform>\n"
                % (nodes - 1, cores, bw, net["lat_us"], bw * nodes, SHM["gbyte"], SHM["lat_us"]))


def simulate(a, work, replay, ranks, cores, net, step_seconds, epoch_seconds, sim_steps, grad, scatter_bytes, hier,
             sw_rows=0):
    nodes = max(1, math.ceil(ranks / cores))
    plat, hosts = os.path.join(work, "plat-%d.xml" % ranks), os.path.join(work, "hosts-%d.txt" % ranks)
    platform(plat, nodes, cores, net)
    with open(hosts, "w") as f:
        for i in range(nodes):
            f.write("node-%d:%d\n" % (i, cores))
    proposals = a.max_centers if ranks <= 2 else max(16, 2 * a.max_centers // ranks)
    cmd = ["smpirun", "-np", str(ranks), "-platform", plat, "-hostfile", hosts,
           "--cfg=smpi/simulate-computation:no", "--cfg=smpi/coll-selector:ompi",
           replay, str(sim_steps), repr(step_seconds), str(grad), repr(epoch_seconds), str(a.rounds),
           str(proposals), str(a.latent_dim), str(a.bins),
           repr(min(scatter_bytes, SCATTER_SIM_BYTES) if ranks <= SCATTER_SIM_RANKS else 0),
           str(min(cores, ranks)), "1" if hier else "0",
           # a global batch: the sliced Wasserstein's per-step exchange (dy_swglobal.h: the moves
           # gathered; beyond 8 ranks the split way's reduce-scatter of the rows' gradients)
           str(sw_rows if ranks > 1 else 0), "1" if ranks > SW_GATHER_MAX else "0",
           # hier: one gradient buffer copied through the node's shared memory
           repr(grad * 4 / (SHM["gbyte"] * 1e9))]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=work)  # smpirun leaves files in its folder
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not line:
        die("smpirun failed (%s):\n%s" % (" ".join(cmd), (p.stdout + p.stderr)[-2000:]), 1)
    r = json.loads(line[-1])
    if ranks > SCATTER_SIM_RANKS:
        r["scatter_seconds"] = None
    elif scatter_bytes > SCATTER_SIM_BYTES:  # bandwidth-bound: scaled from the simulated share
        r["scatter_seconds"] *= scatter_bytes / SCATTER_SIM_BYTES
    return r


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ranks", type=parse_ranks, default=[64, 256, 1024], help="rank counts (default 64,256,1024)")
    ap.add_argument("--network", choices=sorted(NETWORKS), default="ib")
    ap.add_argument("--json", help="write the table here")
    ap.add_argument("--cores-per-node", type=int, default=32, help="ranks per node (default 32)")
    ap.add_argument("--exchange", choices=["hier", "mpi"], default="hier",
                    help="the gradient sum replayed: hier (dynae-mpi's choice across nodes) or mpi")
    ap.add_argument("--batch", choices=["per_rank", "global"], default="per_rank", help="train.batch (default per_rank)")
    ap.add_argument("--input", default=os.path.join(HERE, "..", "inputs", "three-well.toml"))
    ap.add_argument("--program", default=os.path.join(HERE, "..", "build", "dynae-mpi"))
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of the measuring run (default 3)")
    ap.add_argument("--measured", help="JSON of an earlier measurement (the 'measured' part of a --json output)")
    ap.add_argument("--sim-steps", type=int, default=40, help="steps simulated per epoch, the rest extrapolated")
    ap.add_argument("--rounds", type=int, default=3, help="clustering merge rounds per epoch (default 3)")
    ap.add_argument("--check-local", action="store_true",
                    help="also replay the 2-rank gradient sum on one node, to compare with tools/bench_sync")
    a = ap.parse_args(argv)
    if a.cores_per_node < 1 or a.sim_steps < 1 or a.epochs < 2:
        ap.error("need --cores-per-node >= 1, --sim-steps >= 1 and --epochs >= 2")
    for tool in ("smpicc", "smpirun"):
        if shutil.which(tool) is None:
            die("%s not found: install Debian's libsimgrid-dev and simgrid (tools/install-deps.sh does)" % tool)
    net = NETWORKS[a.network]
    work = tempfile.mkdtemp(prefix="dynae-smpi-")
    try:
        if a.measured:
            with open(a.measured) as f:
                m = json.load(f)
            m = m.get("measured", m)
        else:
            if not os.access(a.program, os.X_OK):
                die("no executable %s (build first, or give --program)" % a.program)
            m = measure(a, work)
        a.max_centers, a.latent_dim, a.bins = m["max_centers"], m["latent_dim"], m["bins"]
        replay = os.path.join(work, "smpi_replay")
        p = subprocess.run(["smpicc", "-O2", "-o", replay, os.path.join(HERE, "smpi_replay.c")],
                           capture_output=True, text=True)
        if p.returncode != 0:
            die("smpicc failed:\n" + p.stdout + p.stderr, 1)
        n1 = m["pairs"]
        record = 8 + 2 * m["features"] * 4  # pair record of the scatter: id and two float frames
        t1 = m["step_seconds"] * m["steps_per_epoch"] + m["epoch_seconds"]  # one rank, no messages
        p0 = a.ranks[0]

        def epoch(ranks, pairs_per_rank):
            # Steps per epoch as measured, not pairs / B: every bin ends with a partial batch, so an
            # epoch has more steps than that (about twice as many on the three-well), each costing
            # the measured mean step. With a global batch each rank computes a 1/P share of a step.
            scale = pairs_per_rank / n1
            if a.batch == "per_rank":
                steps, share = max(1.0, m["steps_per_epoch"] * scale), 1.0
            else:
                steps, share = max(1.0, m["steps_per_epoch"] * scale * ranks), 1.0 / ranks
            step_compute = m["step_seconds"] * share
            other = m["epoch_seconds"] * pairs_per_rank / n1
            r = simulate(a, work, replay, ranks, a.cores_per_node, net, step_compute, other,
                         int(min(steps, a.sim_steps)), m["gradient_values"], pairs_per_rank * record,
                         a.exchange == "hier", m["batch_size"] if a.batch == "global" else 0)
            return steps * r["seconds_per_step"] + r["epoch_other_seconds"], r, steps

        rows = []
        strong_base = None
        for P in a.ranks:
            weak_t, wr, wsteps = epoch(P, n1)
            strong_t, _, ssteps = epoch(P, n1 * p0 / P)
            strong_base = strong_t * P if strong_base is None else strong_base
            rows.append({"ranks": P, "nodes": math.ceil(P / a.cores_per_node), "seconds_per_epoch": weak_t,
                         "weak_efficiency": t1 / weak_t, "strong_seconds_per_epoch": strong_t,
                         "strong_efficiency": strong_base / (strong_t * P), "steps_per_epoch": wsteps,
                         "simulated_seconds_per_step": wr["seconds_per_step"],
                         "scatter_seconds": wr["scatter_seconds"]})
        local = None
        if a.check_local:
            rm = simulate(a, work, replay, 2, 2, net, 0.0, 0.0, 50, m["gradient_values"], 0, False)
            rh = simulate(a, work, replay, 2, 2, net, 0.0, 0.0, 50, m["gradient_values"], 0, True)
            local = {"ranks": 2, "simulated_exchange_us": rm["seconds_per_step"] * 1e6,
                     "simulated_shared_us": rh["seconds_per_step"] * 1e6,
                     "compare_with": "tools/bench_sync at 2 ranks: 'mpi exchange' (mpi - sync) and "
                                     "'shared exchange' (shared - sync; with the wait for the slowest rank: "
                                     "shared - alone)"}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    assumptions = {
        "network": "%s: %g Gb/s per link, %g us latency, non-blocking fat tree" % (net["name"], net["gbit"],
                                                                                  net["lat_us"]),
        "node": "%d ranks per node, shared memory inside a node at %g GB/s and %g us" % (a.cores_per_node,
                                                                                       SHM["gbyte"], SHM["lat_us"]),
        "exchange": "hierarchical as the trainer's hier: inside a node copies through shared memory (%.2f us per "
                    "gradient buffer, 5 on a rank's path) and waits modelled as node barriers, MPI_Allreduce "
                    "between the nodes' leaders" % (m["gradient_values"] * 4 / (SHM["gbyte"] * 1e3))
        if a.exchange == "hier" else "MPI_Allreduce over all ranks",
        "collectives": "SimGrid SMPI with Open MPI's selection of algorithms",
        "compute": "measured on this machine and injected unchanged: %.1f us per step of %d pairs, %.4f s per epoch "
                   "outside the steps for %d pairs per rank" % (m["step_seconds"] * 1e6, m["batch_size"],
                                                              m["epoch_seconds"], m["pairs"]),
        "batch": "%s, B = %d%s" % (a.batch, m["batch_size"], ", the global sliced Wasserstein's gather (and split "
                                    "reduce-scatter beyond %d ranks) every step" % SW_GATHER_MAX
                                    if a.batch == "global" else ""),
        "weak": "%d training pairs per rank at every size; efficiency = T(1 rank, no messages) / T(P)" % m["pairs"],
        "strong": "%d pairs in all (%d ranks' share) at every size; efficiency relative to %d ranks"
                  % (m["pairs"] * p0, p0, p0),
        "gradient_values": m["gradient_values"],
        "clustering": "%d merge rounds per epoch" % a.rounds,
        "scatter": "once per run, not in the epoch; simulated up to %d ranks with at most %d KiB per rank, scaled "
                   "linearly to the full size" % (SCATTER_SIM_RANKS, SCATTER_SIM_BYTES >> 10),
        "not modelled": "load imbalance and noise between ranks, file-system time of checkpoints and results",
    }
    print("projection of one epoch on a simulated cluster (SimGrid SMPI)")
    for k, v in assumptions.items():
        print("  %-16s %s" % (k + ":", v))
    print("  %-16s %s" % ("measured:", m["source"]))
    print("%7s %6s %14s %10s %16s %10s" % ("ranks", "nodes", "s/epoch (weak)", "weak eff", "s/epoch (strong)",
                                             "strong eff"))
    for r in rows:
        print("%7d %6d %14.4f %10.3f %16.4f %10.3f" % (r["ranks"], r["nodes"], r["seconds_per_epoch"],
                                                     r["weak_efficiency"], r["strong_seconds_per_epoch"],
                                                     r["strong_efficiency"]))
    if local:
        print("check: 2 ranks on one node, simulated gradient sum %.1f us per step by MPI_Allreduce, %.1f us through "
              "shared memory (%s)" % (local["simulated_exchange_us"], local["simulated_shared_us"],
                                      local["compare_with"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"network": a.network, "assumptions": assumptions, "measured": m, "rows": rows,
                       "check_local": local}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
