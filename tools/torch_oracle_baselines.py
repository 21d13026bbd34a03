#!/usr/bin/env python3
"""Reference losses, gradients and a short Adam trajectory of the baseline models (beta-VAE, SWAE,
SDE-VAE; include/nn/dy_baseline.h), computed with PyTorch autograd.

    /usr/bin/python3 tools/torch_oracle_baselines.py --model vae --out fixture.h5 [--D 5 --d 3 ...]
        [--network conv --C 1] [--reference DIR]

The nets are built from one flat parameter vector in the layout of include/nn/dy_model.h (encoder,
decoder, then for sdevae the force net; per layer W (out, in) row-major, then b (out)); the
baselines' encoder has 2 d outputs (mean, log-variance) except for swae. With --network conv the
encoder and decoder are the image nets of include/nn/dy_convnet.h (built by tools/torch_conv_oracle.py,
one width each) on C x 64 x 64 frames (D = Dy = C 4096, the target the input). Every input (initial
parameters, frames, noise, projections) is drawn from numpy with the seed and rounded to float32.

With --reference DIR (the method authors' code, a folder holding models/ and utils.py) the step-0
losses and gradients are also computed by that code's own model classes, loaded with the same
weights and fed the same noise, projections and prior samples, and the two must agree to 1e-10:
this ties the semantics of the oracle, and so of the C code, to the reference. It needs the
reference's net shape (three hidden layers of one width in encoder and decoder, ReLU, or the conv
nets, and for sdevae a force net of widths 32, 32); other shapes are written without the cross-check.

The HDF5 file written holds:
  attributes of /  model ("vae"/"swae"/"sdevae"), model_code (DyBaselineType), seed, D, Dy, d, B, L,
                   steps, beta, nu, lr, activation_code, network_code (0 mlp, 1 conv), channels,
                   nparam, nparam_rep, reference_error (-1 without --reference)
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


def layout(model, D, Dy, d, enc, dec, prior, network="mlp", C=1):
    """[(name, kind, spec)] of the nets present, in parameter order: kind "mlp" with its widths
    (dims), or "conv" with the image net's layer table of tools/torch_conv_oracle.py."""
    zo = d if model == "swae" else 2 * d
    if network == "conv":
        conv = conv_oracle()
        nets = [("encoder", "conv", conv.encoder_layers(C, enc[0], zo)),
                ("decoder", "conv", conv.decoder_layers(d, dec[0], Dy // (64 * 64)))]
    else:
        nets = [("encoder", "mlp", [D] + enc + [zo]), ("decoder", "mlp", [d] + dec + [Dy])]
    if model == "sdevae":
        nets.append(("force", "mlp", [d] + prior + [d]))
    return nets


def conv_oracle():
    """tools/torch_conv_oracle.py, imported when needed (it works in float64 throughout)."""
    dtype = torch.get_default_dtype()
    conv = importlib.import_module("torch_conv_oracle")
    torch.set_default_dtype(dtype)
    return conv


def net_size(kind, spec):
    if kind == "mlp":
        return sum((nin + 1) * nout for nin, nout in zip(spec[:-1], spec[1:]))
    conv = conv_oracle()
    return sum(int(np.prod(conv.weight_shape(k, cin, cout, ks))) + cout for k, cin, cout, ks, *_ in spec)


def init_params(rng, nets):
    parts = []
    for _, kind, spec in nets:
        if kind == "conv":
            parts.append(conv_oracle().default_init(spec, rng))
            continue
        for nin, nout in zip(spec[:-1], spec[1:]):
            bound = 1.0 / math.sqrt(nin)
            parts.append(rng.uniform(-bound, bound, size=nout * nin))
            parts.append(rng.uniform(-bound, bound, size=nout))
    return as_f32(np.concatenate(parts))


def apply_net(params, nets, name, x, act):
    """Net `name` of the flat tensor params applied to the rows x; MLPs with hidden layers of act and
    a linear last layer, image nets as include/nn/dy_convnet.h (x and the result (rows, features))."""
    off = 0
    for net, kind, spec in nets:
        size = net_size(kind, spec)
        if net != name:
            off += size
            continue
        if kind == "conv":
            cin = spec[0][1]
            shape = (x.shape[0], cin, 64, 64) if spec[0][0] == "conv" else (x.shape[0], cin)
            return conv_oracle().run_net(spec, params[off: off + size], x, shape)[0]
        for i, (nin, nout) in enumerate(zip(spec[:-1], spec[1:])):
            W = params[off: off + nout * nin].view(nout, nin)
            b = params[off + nout * nin: off + nout * nin + nout]
            off += nout * nin + nout
            x = x @ W.t() + b
            if i < len(spec) - 2:
                x = act(x)
        return x
    raise KeyError(name)


def gaussian_kl(mu, s):
    """KL of N(mu, exp(s)) to N(0, 1), summed over the latent components."""
    return 0.5 * (mu ** 2 + torch.exp(s) - 1.0 - s).sum(1)


def losses(model, params, nets, batch, beta, nu, act):
    """(rec, sw, prior, total) of one batch; see include/nn/dy_baseline.h."""
    x0, x1, y0, y1, theta, noise = (batch[k] for k in ("x0", "x1", "y0", "y1", "theta", "noise"))
    d = theta.shape[1]
    zero = torch.zeros((), dtype=x0.dtype)
    if model == "swae":
        z = apply_net(params, nets, "encoder", x0, act)
        rec = ((apply_net(params, nets, "decoder", z, act) - y0) ** 2).sum(1).mean()
        pa, _ = torch.sort(z @ theta.t(), dim=0)
        pb, _ = torch.sort(noise @ theta.t(), dim=0)
        sw = ((pa - pb) ** 2).mean()
        return rec, sw, zero, rec + beta * sw
    frames = x0 if model == "vae" else torch.cat([x0, x1])
    out = apply_net(params, nets, "encoder", frames, act)
    mu, s = out[:, :d], out[:, d:]
    yhat = apply_net(params, nets, "decoder", mu + torch.exp(0.5 * s) * noise, act)
    if model == "vae":
        rec = ((yhat - y0) ** 2).sum(1).mean()
        kl = gaussian_kl(mu, s).mean()
        return rec, zero, kl, rec + beta * kl
    B = x0.shape[0]
    rec = ((yhat[:B] - y0) ** 2).sum(1).mean() + ((yhat[B:] - y1) ** 2).sum(1).mean()
    mu0, mu1, s0, s1 = mu[:B], mu[B:], s[:B], s[B:]
    f = apply_net(params, nets, "force", mu0, torch.tanh)
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


def reference_check(refdir, model, params, nets, batch, beta, nu, D, Dy, d, enc, dec, C=0):
    """Step-0 loss and gradient from the reference code's classes with the same weights and draws
    (C > 0: its conv_encoder and deconv_decoder on C x 64 x 64 frames); returns the largest relative
    difference to this oracle's."""
    sys.path.insert(0, refdir)
    torch.set_default_dtype(torch.float64)
    utils = importlib.import_module("utils")
    cls = {"vae": ("models.VAE", "VAE"), "swae": ("models.SWAE", "SWAE"), "sdevae": ("models.SDEVAE", "SDEVAE")}
    mod = importlib.import_module(cls[model][0])
    if C:
        args = ("conv_encoder", "deconv_decoder", d, (Dy // (64 * 64),), (C, 64, 64))
    else:
        args = ("fc_encoder", "fc_decoder", d, (Dy,), (D,))
    extra = {"vae": (), "swae": (50,), "sdevae": (nu,)}[model]
    ref = getattr(mod, cls[model][1])(*args, *extra, "cpu", enc[0], dec[0])
    # the reference's layers in our order: encoder input, hidden, output; decoder alike; force
    e, dm = ref.model_encoder, ref.model_decoder
    if C:
        seq = [e.encoder_input_layer[0], *e.encoder[0:8:2], e.encoder_output, dm.decoder_input_layer[0],
               dm.decoder_input_layer[2], *dm.decoder[0:6:2], dm.decoder_output[0]]
    else:
        seq = [e.encoder_input_layer[0], e.encoder[0], e.encoder[2], e.encoder_output, dm.decoder_input_layer[0],
               dm.decoder[0], dm.decoder[2], dm.decoder_output]
    if model == "sdevae":
        seq += [ref.prior_force_net[0], ref.prior_force_net[2], ref.prior_force_net[4]]
    off = 0
    with torch.no_grad():
        for lay in seq:
            nw, nb = lay.weight.numel(), lay.bias.numel()
            lay.weight.copy_(torch.tensor(params[off: off + nw]).view(lay.weight.shape))
            lay.bias.copy_(torch.tensor(params[off + nw: off + nw + nb]))
            off += nw + nb
    assert off == params.size, "reference net has another size"
    t = {k: torch.tensor(v) for k, v in batch.items()}
    # the reference feeds images as (frames, channels, 64, 64)
    frames = {k: t[k].view(t[k].shape[0], -1, 64, 64) if C else t[k] for k in ("x0", "x1", "y0", "y1")}
    # the reference's random draws replaced by ours
    saved = (torch.randn_like, utils.rand_uniform, utils.rand_projections)
    torch.randn_like = lambda like: t["noise"].clone()
    utils.rand_uniform = lambda n, dim: t["noise"].clone()
    utils.rand_projections = lambda dim, num: t["theta"].clone()
    try:
        if model == "sdevae":
            loss = ref.calculate_loss(frames["x0"], frames["x1"], frames["y0"], frames["y1"], beta)[0]
        else:
            loss = ref.calculate_loss(frames["x0"], frames["y0"], beta)[0]
    finally:
        torch.randn_like, utils.rand_uniform, utils.rand_projections = saved
    grads = torch.autograd.grad(loss, [p for lay in seq for p in (lay.weight, lay.bias)])
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
    p.add_argument("--network", choices=("mlp", "conv"), default="mlp",
                   help="conv: the image encoder and decoder on C x 64 x 64 frames (sets D and Dy)")
    p.add_argument("--C", type=int, default=1, help="image channels with --network conv")
    p.add_argument("--B", type=int, default=64)
    p.add_argument("--L", type=int, default=50)
    p.add_argument("--beta", type=float, default=10.0)
    p.add_argument("--nu", type=float, default=0.0065)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--reference", help="the method authors' code, to cross-check the step-0 loss and gradient")
    args = p.parse_args(argv)
    if args.network == "conv":
        if len(args.encoder) != 1 or args.encoder[0] % 16 or len(args.decoder) != 1 or args.C < 1:
            p.error("--network conv takes one encoder width (a multiple of 16), one decoder width and --C >= 1")
        args.D = args.Dy = args.C * 64 * 64
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
    conv = a.network == "conv"
    nets = layout(a.model, a.D, a.Dy, a.d, a.encoder, a.decoder, a.prior, a.network, a.C)
    params0 = init_params(rng, nets)
    nparam = params0.size
    nparam_rep = sum(net_size(kind, spec) for _, kind, spec in nets[:2])
    batches = [draw_batch(rng, a.model, a.B, a.D, a.Dy, a.L, a.d, a.Dy == a.D) for _ in range(a.steps)]
    ref_err = -1.0
    # the reference builds three hidden ReLU layers of one width, and a force net of 32, 32
    comparable = ((conv or (len(a.encoder) == 3 and len(set(a.encoder)) == 1 and len(a.decoder) == 3
                           and len(set(a.decoder)) == 1)) and a.activation == "relu"
                  and (a.model != "sdevae" or a.prior == [32, 32]))
    if a.reference and not comparable:
        print("torch_oracle_baselines: this shape is not one the reference code builds; no cross-check")
    if a.reference and comparable:
        ref_err = reference_check(a.reference, a.model, params0, nets, batches[0], a.beta, a.nu, a.D, a.Dy, a.d,
                                  a.encoder, a.decoder, a.C if conv else 0)
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
                 "activation_code": int(a.activation == "tanh"), "network_code": int(conv),
                 "channels": a.C if conv else 0, "nparam": nparam, "nparam_rep": nparam_rep,
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
