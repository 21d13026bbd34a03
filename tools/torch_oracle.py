#!/usr/bin/env python3
"""Reference losses, gradients and a short Adam trajectory of DynamicsAE, computed with PyTorch.

Needs Debian's python (numpy, h5py, torch):

    /usr/bin/python3 tools/torch_oracle.py --out fixture.h5 [--D 5 --Dy 3 --d 3 ...]

The four networks are built from one flat parameter vector in the layout of include/nn/dy_model.h
(encoder, decoder, force, log-diffusion; per layer W (out, in) row-major, then b (out)), and the
losses follow SPEC section 3 with autograd; the diagonal Jacobian of the log-diffusion net is taken
with create_graph=True so its weight derivative (second order) reaches the prior gradient.

Every input (initial parameters, batches, projections, noise) is drawn here from numpy with the seed
and rounded to float32, so a single-precision consumer starts from exactly the same values. The HDF5
file written holds:

  attributes of /  format_version, seed, D, Dy, d, B, L, steps, beta, lr, prior_lr, diffusion
                   ("constant"/"learned"), diffusion_code (0/1, DyDiffusion), activation ("relu"/"tanh",
                   encoder and decoder), activation_code (0/1, DyActivation), dtype ("float64"/
                   "float32": what torch computed in), nparam, nparam_rep, target_is_input,
                   torch_version, fd_check_error (worst relative error of the oracle's own
                   central-difference check of both gradients, float64, 16 pairs of step 0)
  /shape/nhidden   (4,) int32     hidden layers of encoder, decoder, force, log-diffusion
  /shape/hidden    (4, 15) int32  their widths, zero-padded (as DyModelShape)
  /layout          (nlayer_total, 6) int64: net, layer, in, out, offset of W, offset of b
  /inputs/x0, x1   (steps, B, D)  /inputs/y0, y1 (steps, B, Dy)
  /inputs/theta    (steps, L, d)  unit rows       /inputs/eps (steps, B, d)
  /losses          (steps, 3)     L_rec, L_sw, L_prior of each step, before its update
  /grads           (steps, nparam) d L_rep / d(enc, dec) then d L_prior / d(force, logdiff)
  /params/initial  (nparam)       /params/final (nparam)
  /params/trajectory (steps + 1, nparam): row s holds the parameters before step s
  /step0/z0, z1    (B, d) encoder outputs of step 0; /step0/y0hat (B, Dy) decoder(z0)
  /step0/f, g, dgdz, dzp  (B, d)  force, log-diffusion, its diagonal Jacobian, prior moves at z0
All floating-point datasets are float64.
"""
import argparse
import math
import sys

try:
    import numpy as np
    import h5py
    import torch
except ImportError as missing:  # the parity tests must fail, not pass or skip, without the oracle
    sys.exit("torch_oracle.py: cannot import %s with %s (run it with /usr/bin/python3; on Debian install "
             "python3-torch python3-h5py python3-numpy)" % (missing.name, sys.executable))

NET_NAMES = ("encoder", "decoder", "force", "logdiff")
MAX_LAYERS = 16  # DY_MAX_LAYERS


def parse_widths(text):
    widths = [int(w) for w in text.split(",") if w.strip()]
    if not widths or min(widths) <= 0:
        raise argparse.ArgumentTypeError("widths must be a comma-separated list of positive integers")
    return widths


def build_layout(D, Dy, d, enc, dec, prior, act="relu"):
    """Nets in parameter order: list of dicts with dims, activation, per-layer offsets. `act` is the
    hidden activation of encoder and decoder (model.activation); the prior nets use tanh."""
    nets = []
    offset = 0
    specs = ((D, enc, d, act), (d, dec, Dy, act), (d, prior, d, "tanh"), (d, prior, d, "tanh"))
    for name, (nin, hidden, nout, act) in zip(NET_NAMES, specs):
        dims = [nin] + list(hidden) + [nout]
        layers = []
        start = offset
        for i in range(len(dims) - 1):
            w_off = offset
            offset += dims[i + 1] * dims[i]
            b_off = offset
            offset += dims[i + 1]
            layers.append((dims[i], dims[i + 1], w_off, b_off))
        nets.append({"name": name, "dims": dims, "act": act, "layers": layers, "offset": start,
                     "nparam": offset - start})
    return nets


def init_params(rng, nets):
    """PyTorch's Linear default: W and b uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)]."""
    parts = []
    for net in nets:
        for nin, nout, _, _ in net["layers"]:
            bound = 1.0 / math.sqrt(nin)
            parts.append(rng.uniform(-bound, bound, size=nout * nin))
            parts.append(rng.uniform(-bound, bound, size=nout))
    return as_f32(np.concatenate(parts))


def as_f32(a):
    """Rounds to the nearest float32 but keeps float64 storage."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def draw_batch(rng, B, D, Dy, L, d, target_is_input):
    x0 = rng.standard_normal((B, D))
    x1 = x0 + 0.3 * rng.standard_normal((B, D))  # a nearby frame, like a short lag
    if target_is_input:
        y0, y1 = x0.copy(), x1.copy()
    else:
        mix = rng.standard_normal((D, Dy)) / math.sqrt(D)
        y0, y1 = np.tanh(x0 @ mix), np.tanh(x1 @ mix)
    theta = rng.standard_normal((L, d))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    eps = rng.standard_normal((B, d))
    return {k: as_f32(v) for k, v in
            (("x0", x0), ("x1", x1), ("y0", y0), ("y1", y1), ("theta", theta), ("eps", eps))}


class Model:
    """The four nets as views into two flat leaf tensors (representation, prior)."""

    def __init__(self, nets, params, nparam_rep, dtype):
        self.nets = nets
        self.nparam_rep = nparam_rep
        flat = torch.tensor(params, dtype=dtype)
        self.p_rep = flat[:nparam_rep].clone().requires_grad_(True)
        self.p_prior = flat[nparam_rep:].clone().requires_grad_(True)

    def flat(self):
        return torch.cat([self.p_rep.detach(), self.p_prior.detach()]).double().numpy()

    def apply(self, k, x):
        net = self.nets[k]
        buf, base = (self.p_rep, 0) if k < 2 else (self.p_prior, self.nparam_rep)
        nl = len(net["layers"])
        for i, (nin, nout, w_off, b_off) in enumerate(net["layers"]):
            W = buf[w_off - base: w_off - base + nout * nin].view(nout, nin)
            b = buf[b_off - base: b_off - base + nout]
            x = torch.addmm(b, x, W.t())
            if i < nl - 1:
                x = torch.relu(x) if net["act"] == "relu" else torch.tanh(x)
        return x


def losses(model, batch, beta, learned, dzp_fixed=None):
    """SPEC section 3. Returns (L_rec, L_sw, L_prior, L_rep, extras). dzp_fixed replaces the prior
    moves (they are constants of L_sw, but depend on the encoder through z0)."""
    x0, x1, y0, y1, theta, eps = (batch[k] for k in ("x0", "x1", "y0", "y1", "theta", "eps"))
    z0 = model.apply(0, x0)
    z1 = model.apply(0, x1)
    dz = z1 - z0
    y0hat = model.apply(1, z0)
    rec = ((y0hat - y0) ** 2).sum(1).mean() + ((model.apply(1, z1) - y1) ** 2).sum(1).mean()

    # prior nets at z0, which is a constant for them
    zc = z0.detach().requires_grad_(True)
    f = model.apply(2, zc)
    g = model.apply(3, zc)
    d = zc.shape[1]
    cols = []
    for i in range(d):
        (gi,) = torch.autograd.grad(g[:, i].sum(), zc, create_graph=True)
        cols.append(gi[:, i])
    dgdz = torch.stack(cols, 1)  # (B, d) diagonal of dg/dz per sample
    M = torch.exp(g)
    with torch.no_grad():
        if dzp_fixed is not None:
            dzp = dzp_fixed
        elif learned:
            dzp = M * f + M * dgdz + torch.sqrt(2.0 * M) * eps
        else:
            dzp = f + math.sqrt(2.0) * eps

    a, _ = torch.sort(dz @ theta.t(), dim=0)  # (B, L), each projection sorted over the batch
    b, _ = torch.sort(dzp @ theta.t(), dim=0)
    sw = ((a - b) ** 2).mean()
    rep = rec + beta * sw

    drift = M * f + M * dgdz
    prior = (0.5 * (g + (dz.detach() - drift) ** 2 / (2.0 * M)).sum(1)).mean()
    extras = {"z0": z0, "z1": z1, "y0hat": y0hat, "f": f, "g": g, "dgdz": dgdz, "dzp": dzp}
    return rec, sw, prior, rep, extras


def make_optimisers(model, lr, prior_lr):
    opt_rep = torch.optim.Adam([model.p_rep], lr=lr, betas=(0.9, 0.999), eps=1e-8)
    opt_prior = torch.optim.Adam([model.p_prior], lr=prior_lr, betas=(0.9, 0.999), eps=1e-8)
    return opt_rep, opt_prior


def train_step(model, opts, batch, beta, learned):
    """Both losses on one batch, then the representation update, then the prior one."""
    opt_rep, opt_prior = opts
    rec, sw, prior, rep, extras = losses(model, batch, beta, learned)
    (g_rep,) = torch.autograd.grad(rep, model.p_rep)
    (g_prior,) = torch.autograd.grad(prior, model.p_prior)
    model.p_rep.grad = g_rep
    model.p_prior.grad = g_prior
    opt_rep.step()
    opt_prior.step()
    return rec, sw, prior, g_rep, g_prior, extras


def self_check(nets, params, nparam_rep, batch, beta, learned, rng):
    """Directional central differences of both losses in float64: guards the oracle itself,
    in particular the second-order term of the prior gradient. Returns the worst relative error."""
    model = Model(nets, params, nparam_rep, torch.float64)
    # 16 pairs: few ReLU kinks and near-ties in the sorts for a difference step to straddle
    tb = {k: torch.tensor(v if k == "theta" else v[:16], dtype=torch.float64) for k, v in batch.items()}
    _, _, prior, rep, extras = losses(model, tb, beta, learned)
    (g_rep,) = torch.autograd.grad(rep, model.p_rep)
    (g_prior,) = torch.autograd.grad(prior, model.p_prior)
    worst = 0.0
    for _ in range(3):
        for which, grad in ((0, g_rep), (1, g_prior)):
            leaf = model.p_rep if which == 0 else model.p_prior
            u = torch.tensor(rng.standard_normal(leaf.numel()), dtype=torch.float64)
            u /= torch.linalg.norm(u)
            ad = float(grad @ u)
            err = math.inf
            # a step can straddle a ReLU kink or a swap in a sort order; one clean step suffices
            for h in (1e-5, 1e-6, 1e-7):
                vals = []
                for sign in (1.0, -1.0):
                    with torch.no_grad():
                        leaf += sign * h * u
                    out = losses(model, tb, beta, learned, extras["dzp"])
                    vals.append((out[3] if which == 0 else out[2]).item())
                    with torch.no_grad():
                        leaf -= sign * h * u
                fd = (vals[0] - vals[1]) / (2 * h)
                err = min(err, abs(fd - ad) / max(abs(ad), 1e-8))
            worst = max(worst, err)
    return worst


def arguments(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="HDF5 fixture to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--D", type=int, default=2, help="input features")
    p.add_argument("--Dy", type=int, default=0, help="decoder outputs (default D; other than D draws a target)")
    p.add_argument("--d", type=int, default=2, help="latent dimension")
    p.add_argument("--encoder", type=parse_widths, default=[32, 32, 32])
    p.add_argument("--decoder", type=parse_widths, default=[32, 32, 32])
    p.add_argument("--prior", type=parse_widths, default=[32, 32])
    p.add_argument("--target", action="store_true", help="draw a separate decoder target even when Dy == D")
    p.add_argument("--B", type=int, default=64, help="pairs per batch")
    p.add_argument("--L", type=int, default=50, help="projections")
    p.add_argument("--beta", type=float, default=10.0)
    p.add_argument("--diffusion", choices=("constant", "learned"), default="constant")
    p.add_argument("--activation", choices=("relu", "tanh"), default="relu",
                   help="hidden activation of encoder and decoder (model.activation)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--prior-lr", type=float, default=1e-3)
    args = p.parse_args(argv)
    if args.Dy == 0:
        args.Dy = args.D
    if len(args.encoder) >= MAX_LAYERS or len(args.decoder) >= MAX_LAYERS or len(args.prior) >= MAX_LAYERS:
        p.error("at most %d hidden layers per net" % (MAX_LAYERS - 1))
    return args


def main(argv):
    args = arguments(argv)
    torch.set_num_threads(1)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    learned = args.diffusion == "learned"
    target_is_input = args.Dy == args.D and not args.target

    rng = np.random.default_rng(args.seed)
    nets = build_layout(args.D, args.Dy, args.d, args.encoder, args.decoder, args.prior, args.activation)
    nparam_rep = nets[2]["offset"]
    params0 = init_params(rng, nets)
    nparam = params0.size
    batches = [draw_batch(rng, args.B, args.D, args.Dy, args.L, args.d, target_is_input) for _ in range(args.steps)]

    fd_err = self_check(nets, params0, nparam_rep, batches[0], args.beta, learned, rng)
    if fd_err > 1e-5:
        sys.exit("torch_oracle.py: autograd and central differences disagree (relative error %.3g)" % fd_err)
    model = Model(nets, params0, nparam_rep, dtype)
    opts = make_optimisers(model, args.lr, args.prior_lr)
    loss_hist = np.zeros((args.steps, 3))
    grads = np.zeros((args.steps, nparam))
    traj = np.zeros((args.steps + 1, nparam))
    traj[0] = model.flat()
    step0 = None
    for s, batch in enumerate(batches):
        tb = {k: torch.tensor(v, dtype=dtype) for k, v in batch.items()}
        rec, sw, prior, g_rep, g_prior, extras = train_step(model, opts, tb, args.beta, learned)
        loss_hist[s] = (rec.item(), sw.item(), prior.item())
        grads[s] = torch.cat([g_rep, g_prior]).double().numpy()
        traj[s + 1] = model.flat()
        if s == 0:
            step0 = {k: v.detach().double().numpy() for k, v in extras.items()}

    with h5py.File(args.out, "w") as h:
        attrs = {"format_version": 1, "seed": args.seed, "D": args.D, "Dy": args.Dy, "d": args.d,
                 "B": args.B, "L": args.L, "steps": args.steps, "beta": args.beta, "lr": args.lr,
                 "prior_lr": args.prior_lr, "diffusion": args.diffusion, "diffusion_code": int(learned),
                 "activation": args.activation, "activation_code": int(args.activation == "tanh"),
                 "dtype": args.dtype, "nparam": nparam, "nparam_rep": nparam_rep,
                 "target_is_input": int(target_is_input), "torch_version": str(torch.__version__),
                 "fd_check_error": fd_err}
        for k, v in attrs.items():
            h.attrs[k] = v
        nhidden = np.array([len(args.encoder), len(args.decoder), len(args.prior), len(args.prior)], np.int32)
        hidden = np.zeros((4, MAX_LAYERS - 1), np.int32)
        for k, w in enumerate((args.encoder, args.decoder, args.prior, args.prior)):
            hidden[k, :len(w)] = w
        h["shape/nhidden"] = nhidden
        h["shape/hidden"] = hidden
        h["layout"] = np.array([(k, i, *layer) for k, net in enumerate(nets)
                                for i, layer in enumerate(net["layers"])], np.int64)
        for key in batches[0]:
            h["inputs/" + key] = np.stack([b[key] for b in batches])
        h["losses"] = loss_hist
        h["losses"].attrs["columns"] = "rec,sw,prior"
        h["grads"] = grads
        h["params/initial"] = traj[0]
        h["params/final"] = traj[-1]
        h["params/trajectory"] = traj
        for k, v in step0.items():
            h["step0/" + k] = v
    print("torch_oracle: %s: D=%d Dy=%d d=%d nparam=%d B=%d L=%d %s %s, losses step 0: rec %.6g sw %.6g "
          "prior %.6g, self-check %.2g" % (args.out, args.D, args.Dy, args.d, nparam, args.B, args.L,
                                           args.diffusion, args.dtype, *loss_hist[0], fd_err))


if __name__ == "__main__":
    main(sys.argv[1:])
