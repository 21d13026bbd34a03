#!/usr/bin/python3
"""The encoder of a dynae-mpi results file as a PLUMED 2.9 input: the latent as collective variables.

    /usr/bin/python3 tools/export_plumed.py results.h5 --out plumed.dat [--arg NAMES]

Reads /model/ of results.h5 (the encoder's weights in torch layout, its hidden activation and
the input standardisation) and writes PLUMED actions that compute the latent coordinates from
the same features, as the values cv_0, cv_1, ...:

  - the features: with /model's `features` attribute "distances", one DISTANCE action per pair
    of the selected atoms (`atoms`, 0-based in the file, written 1-based as PLUMED counts; all
    atoms when empty), in the order (0,1), (0,2), ..., (1,2), ...; otherwise the values named by
    --arg (comma-separated, one per input feature, defined earlier in the user's PLUMED input);
  - the standardisation (x - mean) / scale folded into the first layer's weights and biases;
  - a tanh encoder: one ANN action (the annfunc module; every layer tanh but the linear last),
    its outputs ann.node-i passed on by COMBINE as cv_i;
  - a ReLU encoder: one CUSTOM action (lepton expression max(0, ...)) per hidden unit, and one
    CUSTOM per latent coordinate for the linear last layer.
Only actions documented by PLUMED 2.9 are used: DISTANCE, COMBINE, CUSTOM, ANN.

--json prints a summary ({"out", "route", "inputs", "outputs", "actions"}) for machine reading.
Exit codes: 0 written, 2 bad arguments or input (missing file or group, wrong --arg count).
"""
import argparse
import json
import sys

try:
    import h5py
    import numpy as np
except ImportError as missing:  # pragma: no cover - depends on the interpreter
    sys.exit("export_plumed.py: %s is missing; run it with /usr/bin/python3 (Debian's python3-h5py)" % missing.name)


class InputError(Exception):
    """The user's mistake: reported with exit code 2."""


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def open_hdf5(path):
    """path opened read-only, or InputError naming it."""
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise InputError("%s: cannot open it as HDF5 (%s)" % (path, e))


def number(x):
    """A float that reads back exactly, without an exponent (lepton and PLUMED parse plain decimals)."""
    s = repr(float(x))
    if "e" in s or "E" in s:
        s = ("%.40f" % x).rstrip("0")
        if s.endswith("."):
            s += "0"
    return s


def read_encoder(path):
    with open_hdf5(path) as f:
        if "model/encoder" not in f:
            raise InputError("%s: no /model/encoder group (written by dynae-mpi from this version on)" % path)
        m = f["model"]
        enc = m["encoder"]
        layers = int(enc.attrs["layers"])
        W = [enc["W%d" % i][()].astype(np.float64) for i in range(layers)]
        b = [enc["b%d" % i][()].astype(np.float64) for i in range(layers)]
        act = text(enc.attrs["activation"])
        mean = m["input_mean"][()].astype(np.float64)
        scale = m["input_scale"][()].astype(np.float64)
        features = text(m.attrs.get("features", "coordinates"))
        atoms = [int(a) for a in np.atleast_1d(m.attrs.get("atoms", np.zeros(0, int)))]
    if act not in ("relu", "tanh"):
        raise InputError("%s: /model/encoder has activation '%s'; relu and tanh can be exported" % (path, act))
    # (x - mean) / scale, then W x + b: W / scale on the columns, b - (W / scale) mean
    W0 = W[0] / scale[None, :]
    b[0] = b[0] - W0 @ mean
    W[0] = W0
    return W, b, act, features, atoms


def feature_actions(features, atoms, D, names):
    """The input labels and the actions that define them."""
    if features == "distances":
        if names:
            raise InputError("--arg is for features other than distances; these come from DISTANCE actions")
        n = len(atoms)
        if n == 0:  # all atoms: D = n (n - 1) / 2
            n = int(round((1 + (1 + 8 * D) ** 0.5) / 2))
            atoms = list(range(n))
        if n * (n - 1) // 2 != D:
            raise InputError("the model has %d inputs, but %d atoms give %d distances" % (D, n, n * (n - 1) // 2))
        labels, lines = [], []
        for i in range(n):
            for j in range(i + 1, n):
                label = "dist_%d_%d" % (atoms[i] + 1, atoms[j] + 1)
                labels.append(label)
                lines.append("%s: DISTANCE ATOMS=%d,%d" % (label, atoms[i] + 1, atoms[j] + 1))
        return labels, lines
    if not names:
        raise InputError("features are '%s': name the %d input values with --arg NAME,NAME,..." % (features, D))
    labels = [s.strip() for s in names.split(",") if s.strip()]
    if len(labels) != D:
        raise InputError("--arg names %d values, the model has %d inputs" % (len(labels), D))
    return labels, []


def linear(row, bias, var):
    """The lepton expression bias + sum row[k] * var(k), signs written out."""
    out = number(bias)
    for k, w in enumerate(row):
        out += ("-" if w < 0 else "+") + number(abs(w)) + "*" + var(k)
    return out


def ann_actions(W, b, labels):
    nodes = [W[0].shape[1]] + [w.shape[0] for w in W]
    acts = ["Tanh"] * (len(W) - 1) + ["Linear"]
    lines = ["ANN ...", "LABEL=ann", "ARG=" + ",".join(labels), "NUM_LAYERS=%d" % len(nodes),
             "NUM_NODES=" + ",".join(str(n) for n in nodes), "ACTIVATIONS=" + ",".join(acts)]
    for i, (w, c) in enumerate(zip(W, b)):
        lines.append("WEIGHTS%d=" % i + ",".join(number(v) for v in w.ravel()))  # (out, in) row by row
        lines.append("BIASES%d=" % i + ",".join(number(v) for v in c))
    lines.append("... ANN")
    lines += ["cv_%d: COMBINE ARG=ann.node-%d PERIODIC=NO" % (k, k) for k in range(W[-1].shape[0])]
    return lines


def custom_actions(W, b, labels):
    lines = []
    prev = labels
    for layer, (w, c) in enumerate(zip(W, b)):
        last = layer == len(W) - 1
        here = []
        for j in range(w.shape[0]):
            label = "cv_%d" % j if last else "enc%d_%d" % (layer, j)
            expr = linear(w[j], c[j], lambda k: "x%d" % k)
            func = expr if last else "max(0," + expr + ")"
            lines.append("%s: CUSTOM ARG=%s VAR=%s FUNC=%s PERIODIC=NO"
                         % (label, ",".join(prev), ",".join("x%d" % k for k in range(len(prev))), func))
            here.append(label)
        prev = here
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("results", help="results.h5 written by dynae-mpi")
    p.add_argument("--out", required=True, help="PLUMED input to write")
    p.add_argument("--arg", help="comma-separated PLUMED values, one per input feature (features other than distances)")
    p.add_argument("--json", action="store_true", help="print a summary as JSON")
    args = p.parse_args(argv)
    try:
        W, b, act, features, atoms = read_encoder(args.results)
        labels, lines = feature_actions(features, atoms, W[0].shape[1], args.arg)
        route = "ANN" if act == "tanh" else "CUSTOM"
        lines += ann_actions(W, b, labels) if route == "ANN" else custom_actions(W, b, labels)
        head = ["# The encoder of %s as collective variables cv_0 .. cv_%d (written by tools/export_plumed.py;"
                % (args.results, W[-1].shape[0] - 1),
                "# %s encoder, input standardisation folded into the first layer)." % act]
        try:
            with open(args.out, "w") as out:
                out.write("\n".join(head + lines) + "\n")
        except OSError as e:
            raise InputError("%s: cannot write it (%s)" % (args.out, e))
    except InputError as e:
        print("export_plumed.py: error: %s" % e, file=sys.stderr)
        return 2
    summary = {"out": args.out, "route": route, "inputs": labels, "outputs": ["cv_%d" % k for k in range(W[-1].shape[0])],
               "actions": sum(1 for line in lines if ":" in line.split(" ")[0] or line == "ANN ...")}
    if args.json:
        print(json.dumps(summary))
    else:
        print("%s: %s route, %d inputs, outputs %s" % (args.out, route, len(labels), ", ".join(summary["outputs"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
