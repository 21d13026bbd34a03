#!/usr/bin/env python3
"""Tiny sprite movie for the image-network training tests: tools/gen_sprites.py's /observed
(frames, 64, 64) and /truth, plus /flat, the same frames as (frames, 4096) features (what
model.network = "mlp" reads).

usage: sprites_data.py OUT.h5 FRAMES SEED"""
import os
import subprocess
import sys

import h5py

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")


def main():
    out, frames, seed = sys.argv[1], sys.argv[2], sys.argv[3]
    subprocess.run([sys.executable, os.path.join(TOOLS, "gen_sprites.py"), "--out", out, "--frames", frames,
                    "--seed", seed, "--step", "3"], check=True)
    with h5py.File(out, "a") as f:
        x = f["observed"][()]
        f["flat"] = x.reshape(len(x), -1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
