#!/usr/bin/env python3
"""Checks a results.h5 of a baseline model (model.type = "vae", "swae" or "sdevae").

usage: check_baseline.py RESULTS.h5 DATA.h5:/dataset MODEL EPOCHS

Holds when: every frame has a finite latent of d columns and a reconstruction; /model/ has the
baseline's nets (an encoder of 2 d outputs for the VAEs, d for SWAE; a force net for sdevae only;
no log-diffusion net); the latent is the encoder's mean recomputed here in numpy from /model/ (an MLP,
or with model.network = "conv" the image encoder, on frames of 64 x 64 pixels read as C*64*64 features);
the history is complete and finite, its regulariser column the model's (sw for swae, prior for the
others, zero in the other column); and the training loss, reconstruction + beta x regulariser,
fell from the first epoch to the last. Exit 0 when all hold, 1 with the problems otherwise."""
import sys

import h5py
import numpy as np


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def conv2d(x, W, b):
    """torch's conv2d of x (n, c, h, w) with W (o, c, k, k): stride 2 and padding 1 for the 4 x 4
    kernels of the image encoder, stride 1 and no padding for its 1 x 1 one."""
    k = W.shape[2]
    s, p = (2, 1) if k == 4 else (1, 0)
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ho, wo = (x.shape[2] + 2 * p - k) // s + 1, (x.shape[3] + 2 * p - k) // s + 1
    y = np.zeros((x.shape[0], W.shape[0], ho, wo)) + b[None, :, None, None]
    for u in range(k):
        for v in range(k):
            y += np.einsum("oc,ncyx->noyx", W[:, :, u, v], xp[:, :, u:u + s * ho:s, v:v + s * wo:s])
    return y


def encoder_mean(f, x, d):
    g = f["model/encoder"]
    h = (x - f["model/input_mean"][()]) / f["model/input_scale"][()]
    n = int(g.attrs["layers"])
    if text(g.attrs.get("network", "mlp")) == "conv":  # ReLU after every layer but the last (linear) one
        h = h.reshape(len(h), -1, 64, 64)
        for l in range(n):
            W, b = g["W%d" % l][()], g["b%d" % l][()]
            h = conv2d(h, W, b) if W.ndim == 4 else h.reshape(len(h), -1) @ W.T + b
            if l < n - 1:
                h = np.maximum(h, 0)
        return h[:, :d]
    act = text(g.attrs["activation"])
    for l in range(n):
        h = h @ g["W%d" % l][()].T + g["b%d" % l][()]
        if l < n - 1:
            h = np.maximum(h, 0) if act == "relu" else np.tanh(h)
    return h[:, :d]


def main():
    path, data, model, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    dfile, dset = data.rsplit(":", 1)
    with h5py.File(dfile, "r") as f:
        x = f[dset][()].astype(np.float64)
    x = x.reshape(len(x), -1)  # images: C*64*64 features
    frames, D = x.shape
    bad = []

    def need(cond, what):
        if not cond:
            bad.append(what)

    with h5py.File(path, "r") as f:
        z = f["latent/traj0"][()]
        d = int(f["model"].attrs["latent_dim"])
        need(z.shape == (frames, d), f"latent shape {z.shape}, expected ({frames}, {d})")
        need(np.all(np.isfinite(z)) and not np.any(np.all(z == 0, axis=1)), "latent not finite or rows unwritten")
        need(f["reconstruction/traj0"].shape == (frames, D), "reconstruction shape")
        enc = f["model/encoder"]
        zo = enc["b%d" % (int(enc.attrs["layers"]) - 1)].shape[0]
        need(zo == (d if model == "swae" else 2 * d), f"encoder has {zo} outputs")
        need(int(f["model/logdiff"].attrs["layers"]) == 0, "a log-diffusion net")
        need((int(f["model/force"].attrs["layers"]) > 0) == (model == "sdevae"), "force net present or missing")
        zm = encoder_mean(f, x, d)
        err = np.max(np.abs(zm - z)) / max(np.max(np.abs(zm)), 1e-12)
        need(err < 1e-4, f"latent differs from the encoder's mean by {err:.3g} (relative)")
        need("fields" not in f, "/fields/ written for a model without a learned prior")
        h = {k: f["history/" + k][()] for k in ("loss_rec_train", "loss_sw_train", "loss_prior_train",
                                                "loss_rec_test", "loss_sw_test", "loss_prior_test")}
        config = text(f.attrs["config"])
    for k, v in h.items():
        need(v.shape == (epochs,) and np.all(np.isfinite(v)), f"history/{k}: {v}")
    reg, other = ("sw", "prior") if model == "swae" else ("prior", "sw")
    need(np.all(h[f"loss_{other}_train"] == 0) and np.all(h[f"loss_{reg}_train"] > 0),
         f"regulariser columns: {reg} {h[f'loss_{reg}_train']}, {other} {h[f'loss_{other}_train']}")
    need(f'type = "{model}"' in config, "the configuration's model.type")
    beta = float(config.split("beta = ")[1].split()[0])
    total = h["loss_rec_train"] + beta * h[f"loss_{reg}_train"]
    need(total[-1] < total[0], f"training loss did not fall: {total}")
    for b in bad:
        print("FAIL:", b)
    print(f"{path}: {model} {'ok' if not bad else 'BAD'}; training loss {total[0]:.4g} -> {total[-1]:.4g}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
