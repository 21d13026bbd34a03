#!/usr/bin/env python3
"""Reference losses, gradients and a short Adam trajectory of the baseline models (beta-VAE, SWAE,
SDE-VAE; include/nn/dy_baseline.h), computed with PyTorch autograd.

    /usr/bin/python3 tools/torch_oracle_baselines.py --model vae --out fixture.h5 [--D 5 --d 3 ...]
        [--reference DIR]

The nets are built from one flat parameter vector in the layout of include/nn/dy_model.h (encoder,
decoder, then for sdevae the force net; per layer W (out, in) row-major, then b (out)); the
baselines' encoder has 2 d outputs (mean, log-variance) except for swae. Every input (initial
parameters, frames, noise, projections) is drawn from numpy with the seed and rounded to float32.

With --reference DIR (the method authors' code, a folder holding models/ and utils.py) the step-0
losses and gradients are also computed by that code's own model classes, loaded with the same
weights and fed the same noise, projections and prior samples, and the two must agree to 1e-10:
this ties the semantics of the oracle, and so of the C code, to the reference. It needs the
reference's net shape (three hidden layers of one width in encoder and decoder, ReLU, and for
sdevae a force net of widths 32, 32); other shapes are written without the cross-check.

The HDF5 file written holds:
  attributes of /  model ("vae"/"swae"/"sdevae"), model_code (DyBaselineType), seed, D, Dy, d, B, L,
                   steps, beta, nu, lr, activation_code, nparam, nparam_rep, reference_error
                   (-1 without --reference)
  /shape/nhidden (4,) int32 (-1: absent net)   /shape/hidden (4, 15) int32
  /inputs/x0, x1 (steps, B, D)  /inputs/y0, y1 (steps, B, Dy)  /inputs/theta (steps, L, d)
  /inputs/noise  (steps, R, d)  R = B, or 2B for sdevae: eps, or swae's prior samples
  /losses (steps, 3) rec, sw, prior (without beta)   /grads (steps, nparam)
  /params/initial, /params/final (nparam)
One Adam (PyTorch's defaults) over all parameters at --lr, as the reference trains them.
"""
import argparse
import importlib
import math
import os
import sys

try:
    import numpy as np
    import h5py
    import torch
except ImportError as missing:  # the parity tests must fail, not pass or skip, without the oracle
    sys.exit("torch_oracle_baselines.py: cannot import %s with %s (run it with /usr/bin/python3)"
             % (missing.name, sys.executable))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_oracle import MAX_LAYERS, as_f32, parse_widths  # noqa: E402

MODEL_CODES = {"vae": 1, "swae": 2, "sdevae": 3}


def layout(model, D, Dy, d, enc, dec, prior):
    """[(name, dims, act)] of the nets present, in parameter order."""
    nets = [("encoder", [D] + enc + [d if model == "swae" else 2 * d]), ("decoder", [d] + dec + [Dy])]
    if model == "sdevae":
        nets.append(("force", [d] + prior + [d]))
    return nets


def init_params(rng, nets):
    parts = []
    for _, dims in nets:
        for nin, nout in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(nin)
            parts.append(rng.uniform(-bound, bound, size=nout * nin))
            parts.append(rng.uniform(-bound, bound, size=nout))
    return as_f32(np.concatenate(parts))


def mlp(params, nets, name, x, act):
    """Net `name` of the flat tensor params applied to x; hidden layers with act, the last linear."""
    off = 0
    for net, dims in nets:
        for i, (nin, nout) in enumerate(zip(dims[:-1], dims[1:])):
            W = params[off: off + nout * nin].view(nout, nin)
            b = params[off + nout * nin: off + nout * nin + nout]
            off += nout * nin + nout
            if net != name:
                continue
            x = x @ W.t() + b
            if i < len(dims) - 2:
                x = act(x)
    return x


def gaussian_kl(mu, s):
    """KL of N(mu, exp(s)) to N(0, 1), summed over the latent components."""
    return 0.5 * (mu ** 2 + torch.exp(s) - 1.0 - s).sum(1)


def losses(model, params, nets, batch, beta, nu, act):
    """(rec, sw, prior, total) of one batch; see include/nn/dy_baseline.h."""
    x0, x1, y0, y1, theta, noise = (batch[k] for k in ("x0", "x1", "y0", "y1", "theta", "noise"))
    d = theta.shape[1]
    zero = torch.zeros((), dtype=x0.dtype)
    if model == "swae":
        z = mlp(params, nets, "encoder", x0, act)
        rec = ((mlp(params, nets, "decoder", z, act) - y0) ** 2).sum(1).mean()
        pa, _ = torch.sort(z @ theta.t(), dim=0)
        pb, _ = torch.sort(noise @ theta.t(), dim=0)
        sw = ((pa - pb) ** 2).mean()
        return rec, sw, zero, rec + beta * sw
    frames = x0 if model == "vae" else torch.cat([x0, x1])
    out = mlp(params, nets, "encoder", frames, act)
    mu, s = out[:, :d], out[:, d:]
    yhat = mlp(params, nets, "decoder", mu + torch.exp(0.5 * s) * noise, act)
    if model == "vae":
        rec = ((yhat - y0) ** 2).sum(1).mean()
        kl = gaussian_kl(mu, s).mean()
        return rec, zero, kl, rec + beta * kl
    B = x0.shape[0]
    rec = ((yhat[:B] - y0) ** 2).sum(1).mean() + ((yhat[B:] - y1) ** 2).sum(1).mean()
    mu0, mu1, s0, s1 = mu[:B], mu[B:], s[:B], s[B:]
    f = mlp(params, nets, "force", mu0, torch.tanh)
    # z0 ~ N(0, 1/nu), z1 | z0 ~ N(z0 + f, 1), posterior variances carried as the reference does
    kl = 0.5 * (nu * (mu0 ** 2 + torch.exp(s0)) - math.log(nu) + torch.exp(s0) + torch.exp(s1)
                + (mu1 - mu0 - f) ** 2 - 2.0 - s0 - s1).sum(1)
    kl = kl.mean()
    return rec, zero, kl, rec + beta * kl


def draw_batch(rng, model, B, D, Dy, L, d, target_is_input):
    x0 = rng.standard_normal((B, D))
    x1 = x0 + 0.3 * rng.standard_normal((B, D))
    if target_is_input:
        y0, y1 = x0.copy(), x1.copy()
    else:
        mix = rng.standard_normal((D, Dy)) / math.sqrt(D)
        y0, y1 = np.tanh(x0 @ mix), np.tanh(x1 @ mix)
    theta = rng.standard_normal((L, d))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    rows = 2 * B if model == "sdevae" else B
    noise = rng.uniform(-1.0, 1.0, (rows, d)) if model == "swae" else rng.standard_normal((rows, d))
    return {k: as_f32(v) for k, v in
            (("x0", x0), ("x1", x1), ("y0", y0), ("y1", y1), ("theta", theta), ("noise", noise))}


def reference_check(refdir, model, params, nets, batch, beta, nu, D, Dy, d, enc, dec):
    """Step-0 loss and gradient from the reference code's classes with the same weights and draws;
    returns the largest relative difference to this oracle's."""
    sys.path.insert(0, refdir)
    torch.set_default_dtype(torch.float64)
    utils = importlib.import_module("utils")
    cls = {"vae": ("models.VAE", "VAE"), "swae": ("models.SWAE", "SWAE"), "sdevae": ("models.SDEVAE", "SDEVAE")}
    mod = importlib.import_module(cls[model][0])
    args = ("fc_encoder", "fc_decoder", d, (Dy,), (D,))
    extra = {"vae": (), "swae": (50,), "sdevae": (nu,)}[model]
    ref = getattr(mod, cls[model][1])(*args, *extra, "cpu", enc[0], dec[0])
    # the reference's linear layers in our order: encoder input, hidden, output; decoder alike; force
    seq = [ref.model_encoder.encoder_input_layer[0], ref.model_encoder.encoder[0], ref.model_encoder.encoder[2],
           ref.model_encoder.encoder_output, ref.model_decoder.decoder_input_layer[0], ref.model_decoder.decoder[0],
           ref.model_decoder.decoder[2], ref.model_decoder.decoder_output]
    if model == "sdevae":
        seq += [ref.prior_force_net[0], ref.prior_force_net[2], ref.prior_force_net[4]]
    off = 0
    with torch.no_grad():
        for lin in seq:
            nout, nin = lin.weight.shape
            lin.weight.copy_(torch.tensor(params[off: off + nout * nin]).view(nout, nin))
            lin.bias.copy_(torch.tensor(params[off + nout * nin: off + nout * nin + nout]))
            off += nout * nin + nout
    assert off == params.size, "reference net has another size"
    t = {k: torch.tensor(v) for k, v in batch.items()}
    # the reference's random draws replaced by ours
    saved = (torch.randn_like, utils.rand_uniform, utils.rand_projections)
    torch.randn_like = lambda like: t["noise"].clone()
    utils.rand_uniform = lambda n, dim: t["noise"].clone()
    utils.rand_projections = lambda dim, num: t["theta"].clone()
    try:
        if model == "sdevae":
            loss = ref.calculate_loss(t["x0"], t["x1"], t["y0"], t["y1"], beta)[0]
        else:
            loss = ref.calculate_loss(t["x0"], t["y0"], beta)[0]
    finally:
        torch.randn_like, utils.rand_uniform, utils.rand_projections = saved
    grads = torch.autograd.grad(loss, [p for lin in seq for p in (lin.weight, lin.bias)])
    g_ref = torch.cat([g.reshape(-1) for g in grads]).numpy()
    flat = torch.tensor(params, requires_grad=True)
    ours = losses(model, flat, nets, t, beta, nu, torch.relu)[3]
    (g_ours,) = torch.autograd.grad(ours, flat)
    torch.set_default_dtype(torch.float32)
    err_loss = abs(loss.item() - ours.item()) / max(abs(ours.item()), 1e-300)
    err_grad = np.linalg.norm(g_ref - g_ours.numpy()) / np.linalg.norm(g_ours.numpy())
    return max(err_loss, err_grad)


def arguments(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=sorted(MODEL_CODES), required=True)
    p.add_argument("--out", required=True, help="HDF5 fixture to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--D", type=int, default=2)
    p.add_argument("--Dy", type=int, default=0, help="decoder outputs (default D; other than D draws a target)")
    p.add_argument("--d", type=int, default=2)
    p.add_argument("--encoder", type=parse_widths, default=[32, 32, 32])
    p.add_argument("--decoder", type=parse_widths, default=[32, 32, 32])
    p.add_argument("--prior", type=parse_widths, default=[32, 32])
    p.add_argument("--activation", choices=("relu", "tanh"), default="relu")
    p.add_argument("--B", type=int, default=64)
    p.add_argument("--L", type=int, default=50)
    p.add_argument("--beta", type=float, default=10.0)
    p.add_argument("--nu", type=float, default=0.0065)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--reference", help="the method authors' code, to cross-check the step-0 loss and gradient")
    args = p.parse_args(argv)
    if args.Dy == 0:
        args.Dy = args.D
    if max(len(args.encoder), len(args.decoder), len(args.prior)) >= MAX_LAYERS:
        p.error("at most %d hidden layers per net" % (MAX_LAYERS - 1))
    return args


def main(argv):
    a = arguments(argv)
    torch.set_num_threads(1)
    act = torch.relu if a.activation == "relu" else torch.tanh
    rng = np.random.default_rng(a.seed)
    nets = layout(a.model, a.D, a.Dy, a.d, a.encoder, a.decoder, a.prior)
    params0 = init_params(rng, nets)
    nparam = params0.size
    nparam_rep = sum((nin + 1) * nout for _, dims in nets[:2] for nin, nout in zip(dims[:-1], dims[1:]))
    batches = [draw_batch(rng, a.model, a.B, a.D, a.Dy, a.L, a.d, a.Dy == a.D) for _ in range(a.steps)]
    ref_err = -1.0
    # the reference builds three hidden ReLU layers of one width, and a force net of 32, 32
    comparable = (len(a.encoder) == 3 and len(set(a.encoder)) == 1 and len(a.decoder) == 3
                  and len(set(a.decoder)) == 1 and a.activation == "relu"
                  and (a.model != "sdevae" or a.prior == [32, 32]))
    if a.reference and not comparable:
        print("torch_oracle_baselines: this shape is not one the reference code builds; no cross-check")
    if a.reference and comparable:
        ref_err = reference_check(a.reference, a.model, params0, nets, batches[0], a.beta, a.nu, a.D, a.Dy, a.d,
                                  a.encoder, a.decoder)
        if ref_err > 1e-10:
            sys.exit("torch_oracle_baselines.py: the reference code's %s disagrees (relative error %.3g)"
                     % (a.model, ref_err))
    params = torch.tensor(params0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([params], lr=a.lr)
    loss_hist = np.zeros((a.steps, 3))
    grads = np.zeros((a.steps, nparam))
    for s, batch in enumerate(batches):
        t = {k: torch.tensor(v, dtype=torch.float64) for k, v in batch.items()}
        rec, sw, prior, total = losses(a.model, params, nets, t, a.beta, a.nu, act)
        (g,) = torch.autograd.grad(total, params)
        loss_hist[s] = (rec.item(), sw.item(), prior.item())
        grads[s] = g.numpy()
        params.grad = g
        opt.step()
    with h5py.File(a.out, "w") as h:
        attrs = {"model": a.model, "model_code": MODEL_CODES[a.model], "seed": a.seed, "D": a.D, "Dy": a.Dy,
                 "d": a.d, "B": a.B, "L": a.L, "steps": a.steps, "beta": a.beta, "nu": a.nu, "lr": a.lr,
                 "activation_code": int(a.activation == "tanh"), "nparam": nparam, "nparam_rep": nparam_rep,
                 "reference_error": ref_err}
        for k, v in attrs.items():
            h.attrs[k] = v
        nhidden = np.array([len(a.encoder), len(a.decoder), len(a.prior) if a.model == "sdevae" else -1, -1],
                           np.int32)
        hidden = np.zeros((4, MAX_LAYERS - 1), np.int32)
        for k, w in enumerate((a.encoder, a.decoder, a.prior)):
            hidden[k, :len(w)] = w
        h["shape/nhidden"] = nhidden
        h["shape/hidden"] = hidden
        for key in batches[0]:
            h["inputs/" + key] = np.stack([b[key] for b in batches])
        h["losses"] = loss_hist
        h["grads"] = grads
        h["params/initial"] = params0
        h["params/final"] = params.detach().numpy()
    print("torch_oracle_baselines: %s: %s D=%d Dy=%d d=%d nparam=%d B=%d L=%d, step 0: rec %.6g sw %.6g "
          "prior %.6g%s" % (a.out, a.model, a.D, a.Dy, a.d, nparam, a.B, a.L, *loss_hist[0],
                            "" if ref_err < 0 else ", reference code agrees to %.2g" % ref_err))


if __name__ == "__main__":
    main(sys.argv[1:])
