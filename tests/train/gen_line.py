#!/usr/bin/env python3
"""A latent that must collapse: a 1-D random walk (20,000 frames, clipped to [-5, 5]) written twice,
as the two identical columns of /observed (float32). usage: gen_line.py OUT.h5"""
import sys

import h5py
import numpy as np

rng = np.random.default_rng(3)
x = np.clip(np.cumsum(rng.normal(size=20000)) * 0.05, -5, 5)
with h5py.File(sys.argv[1], "w") as f:
    f["observed"] = np.stack([x, x], 1).astype(np.float32)
