#!/usr/bin/env python3
"""Times one DynamicsAE training step in PyTorch, the yardstick for tools/bench_step.c.

    /usr/bin/python3 tools/bench_torch.py [--B 256 --L 50 --D 2 --d 2 --reps 200 ...]

One thread, float32, the networks and losses of tools/torch_oracle.py (autograd, create_graph for
the prior's diagonal Jacobian), both Adam steps. Each step draws fresh x, theta and eps with torch
inside the timed region, timed by the thread's CPU time (time.thread_time, as bench_step times its
own steps: a shared machine's periods of running others do not count). Prints a line "torch_us_per_step median M min N" that bench_step parses.

With --serve it times blocks on request instead, so that bench_step can interleave them with its
own: after the warm-up it reads lines "steps N" from stdin and answers each with one line
"torch_block T1 T2 ... TN" (microseconds per step); "quit" or the end of input stops it.
"""
import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_oracle  # noqa: E402


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--B", type=int, default=256)
    p.add_argument("--L", type=int, default=50)
    p.add_argument("--D", type=int, default=2)
    p.add_argument("--d", type=int, default=2)
    p.add_argument("--encoder", type=torch_oracle.parse_widths, default=[32, 32, 32])
    p.add_argument("--decoder", type=torch_oracle.parse_widths, default=[32, 32, 32])
    p.add_argument("--prior", type=torch_oracle.parse_widths, default=[32, 32])
    p.add_argument("--diffusion", choices=("constant", "learned"), default="constant")
    p.add_argument("--beta", type=float, default=10.0)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--serve", action="store_true", help="time blocks of steps on request (see above)")
    args = p.parse_args(argv)

    import numpy as np
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    nets = torch_oracle.build_layout(args.D, args.D, args.d, args.encoder, args.decoder, args.prior)
    params = torch_oracle.init_params(rng, nets)
    model = torch_oracle.Model(nets, params, nets[2]["offset"], torch.float32)
    opts = torch_oracle.make_optimisers(model, 1e-3, 1e-3)
    learned = args.diffusion == "learned"
    x = torch.randn(4096, args.D)  # a pool of frames; pairs are drawn from it each step

    def step():
        idx = torch.randint(0, x.shape[0] - 1, (args.B,))
        theta = torch.randn(args.L, args.d)
        theta /= theta.norm(dim=1, keepdim=True)
        x0, x1 = x[idx], x[idx + 1]
        batch = {"x0": x0, "x1": x1, "y0": x0, "y1": x1, "theta": theta, "eps": torch.randn(args.B, args.d)}
        torch_oracle.train_step(model, opts, batch, args.beta, learned)

    for _ in range(args.warmup):
        step()
    header = "torch %s, %d thread, float32, %s on %s" % (torch.__version__, torch.get_num_threads(),
                                                         args.diffusion, platform.processor() or platform.machine())
    if args.serve:
        print(header, flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words or words[0] == "quit":
                break
            block = []
            for _ in range(int(words[1])):
                t0 = time.thread_time()
                step()
                block.append((time.thread_time() - t0) * 1e6)
            print("torch_block " + " ".join("%.1f" % t for t in block), flush=True)
        return
    times = []
    for _ in range(args.reps):
        t0 = time.thread_time()
        step()
        times.append((time.thread_time() - t0) * 1e6)
    print(header)
    print("torch_us_per_step median %.1f min %.1f" % (statistics.median(times), min(times)))


if __name__ == "__main__":
    main(sys.argv[1:])
