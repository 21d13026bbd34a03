#!/usr/bin/env python3
"""Reference values of the convolution kernels and of the image encoder and decoder, computed with
PyTorch in float64, for tests/parity/parity_conv.c.

    /usr/bin/python3 tools/torch_conv_oracle.py --out fixture.h5 [--seed 1]

Each case applies one layer (torch.nn.functional.conv2d / conv_transpose2d) or one net to random
inputs, takes the objective sum(R * output) with a random R of the output's shape, and stores the
output and the gradients of the objective with respect to the input and to every parameter. The
nets are built here layer by layer as include/nn/dy_convnet.h describes them (the architecture of
the method's reference code) from one flat parameter vector in that header's layout.

The HDF5 file holds one group per case:
  /layers/<name>  attributes transposed, cin, hin, win, cout, k, stride, pad, n
                  datasets X (n, cin, hin, win), W (torch layout), b (cout), R, Y (n, cout, hout, wout),
                  dX, dW, db (the gradients)
  /nets/<name>    attributes kind ("encoder"/"decoder"), C (input or output channels), width, d, n
                  datasets params (nparam), X (n, in features), R, Y (n, out features), grad (nparam), dX
All floating-point datasets are float64.
"""
import argparse
import sys

try:
    import numpy as np
    import h5py
    import torch
    import torch.nn.functional as F
except ImportError as missing:  # the parity test must fail, not skip, without the oracle
    sys.exit("torch_conv_oracle.py: cannot import %s with %s (run it with /usr/bin/python3)" % (missing.name, sys.executable))

torch.set_default_dtype(torch.float64)

# (name, transposed, cin, hin, win, cout, k, stride, pad, n): the nets' layers and odd ones
LAYERS = [
    ("conv_first", 0, 1, 64, 64, 32, 4, 2, 1, 2),
    ("conv_mid", 0, 32, 16, 16, 64, 4, 2, 1, 3),
    ("conv_1x1", 0, 64, 4, 4, 3, 1, 1, 0, 4),
    ("conv_odd", 0, 3, 9, 7, 5, 4, 2, 1, 3),
    ("conv_nopad", 0, 2, 11, 8, 3, 3, 2, 0, 2),
    ("convt_first", 1, 64, 4, 4, 64, 4, 2, 1, 3),
    ("convt_last", 1, 32, 32, 32, 3, 4, 2, 1, 2),
    ("convt_odd", 1, 5, 3, 6, 2, 4, 2, 1, 3),
    ("convt_nopad", 1, 3, 4, 5, 4, 3, 2, 0, 2),
]


def encoder_layers(C, e, d):
    """(kind, in, out, k, stride, pad, relu) in parameter order; kind conv / convt / linear."""
    chans = [C, 32, 32, 64, 64]
    layers = [("conv", chans[i], chans[i + 1], 4, 2, 1, True) for i in range(4)]
    layers.append(("conv", 64, e // 16, 1, 1, 0, True))
    layers.append(("linear", e, d, 0, 0, 0, False))
    return layers


def decoder_layers(d, h, Cy):
    layers = [("linear", d, h, 0, 0, 0, True), ("linear", h, 1024, 0, 0, 0, True)]
    chans = [64, 64, 32, 32, Cy]
    layers += [("convt", chans[i], chans[i + 1], 4, 2, 1, i < 3) for i in range(4)]
    return layers


def weight_shape(kind, cin, cout, k):
    return {"conv": (cout, cin, k, k), "convt": (cin, cout, k, k), "linear": (cout, cin)}[kind]


def run_net(layers, flat, x, input_shape):
    """Forward of the net on x (n, features) with parameters taken from flat (a leaf tensor)."""
    off = 0
    h = x.reshape(input_shape)
    for kind, cin, cout, k, s, p, relu in layers:
        shape = weight_shape(kind, cin, cout, k)
        nw = int(np.prod(shape))
        W = flat[off:off + nw].reshape(shape)
        b = flat[off + nw:off + nw + cout]
        off += nw + cout
        if kind == "linear":
            h = F.linear(h.reshape(h.shape[0], -1), W, b)
            if cout == 1024 and relu:  # the decoder's last linear layer feeds the images
                h = F.relu(h).reshape(-1, 64, 4, 4)
                continue
        elif kind == "conv":
            h = F.conv2d(h, W, b, stride=s, padding=p)
        else:
            h = F.conv_transpose2d(h, W, b, stride=s, padding=p)
        if relu:
            h = F.relu(h)
    return h.reshape(h.shape[0], -1), off


def default_init(layers, rng):
    """Torch's default bounds, 1/sqrt(fan_in) with fan_in from the weight's second dimension."""
    parts = []
    for kind, cin, cout, k, _, _, _ in layers:
        shape = weight_shape(kind, cin, cout, k)
        fan_in = shape[1] * (k * k if kind != "linear" else 1)
        a = 1.0 / np.sqrt(fan_in)
        parts.append(rng.uniform(-a, a, int(np.prod(shape))))
        parts.append(rng.uniform(-a, a, cout))
    return np.concatenate(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    with h5py.File(args.out, "w") as f:
        f.attrs["torch_version"] = str(torch.__version__).encode()
        for name, tr, cin, hin, win, cout, k, s, p, n in LAYERS:
            X = torch.tensor(rng.standard_normal((n, cin, hin, win)), requires_grad=True)
            wshape = (cin, cout, k, k) if tr else (cout, cin, k, k)
            W = torch.tensor(rng.standard_normal(wshape) * 0.3, requires_grad=True)
            b = torch.tensor(rng.standard_normal(cout), requires_grad=True)
            Y = (F.conv_transpose2d if tr else F.conv2d)(X, W, b, stride=s, padding=p)
            R = torch.tensor(rng.standard_normal(tuple(Y.shape)))
            (R * Y).sum().backward()
            g = f.create_group("layers/" + name)
            for key, val in dict(transposed=tr, cin=cin, hin=hin, win=win, cout=cout, k=k, stride=s, pad=p, n=n).items():
                g.attrs[key] = np.int32(val)
            for key, t in (("X", X), ("W", W), ("b", b), ("R", R), ("Y", Y)):
                g[key] = t.detach().numpy()
            g["dX"], g["dW"], g["db"] = X.grad.numpy(), W.grad.numpy(), b.grad.numpy()
        # the nets: the default shape, then three channels, other widths and d = 3
        for name, kind, C, width, d, n in (("encoder_default", "encoder", 1, 32, 2, 3),
                                           ("decoder_default", "decoder", 1, 32, 2, 3),
                                           ("encoder_rgb", "encoder", 3, 48, 3, 2),
                                           ("decoder_rgb", "decoder", 3, 20, 3, 2)):
            layers = encoder_layers(C, width, d) if kind == "encoder" else decoder_layers(d, width, C)
            flat = torch.tensor(default_init(layers, rng), requires_grad=True)
            nin = C * 64 * 64 if kind == "encoder" else d
            X = torch.tensor(rng.standard_normal((n, nin)), requires_grad=True)
            Y, used = run_net(layers, flat, X, (n, C, 64, 64) if kind == "encoder" else (n, d))
            assert used == flat.numel()
            R = torch.tensor(rng.standard_normal(tuple(Y.shape)))
            (R * Y).sum().backward()
            g = f.create_group("nets/" + name)
            g.attrs["kind"] = kind.encode()
            for key, val in dict(C=C, width=width, d=d, n=n).items():
                g.attrs[key] = np.int32(val)
            g["params"], g["X"], g["R"], g["Y"] = flat.detach().numpy(), X.detach().numpy(), R.numpy(), Y.detach().numpy()
            g["grad"], g["dX"] = flat.grad.numpy(), X.grad.numpy()


if __name__ == "__main__":
    main()
