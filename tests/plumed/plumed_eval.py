#!/usr/bin/env python3
"""A small evaluator of PLUMED input, for testing tools/export_plumed.py where PLUMED is absent.

It knows the actions the exporter writes, with their meaning as PLUMED 2.9's manual gives it:
  DISTANCE ATOMS=a,b        the distance between atoms a and b (1-based), no periodic box
  COMBINE ARG=... [COEFFICIENTS=... PARAMETERS=... POWERS=... NORMALIZE]
                            sum_i c_i (x_i - p_i)^n_i (defaults c 1, p 0, n 1), divided by sum c_i
                            with NORMALIZE
  CUSTOM ARG=... VAR=... FUNC=...
                            a lepton expression of the named variables (numbers, + - * / ^,
                            parentheses, max, min, step, tanh, exp, log, sqrt, abs, sin, cos)
  ANN ARG=... NUM_LAYERS NUM_NODES ACTIVATIONS WEIGHTSi BIASESi
                            the annfunc module's feed-forward net: layer i+1 is act_i(W_i x + b_i),
                            W_i given row by row ((nodes of layer i+1) rows of (nodes of layer i)),
                            activations Linear or Tanh; components LABEL.node-k
Input syntax: one action per line, "label: ACTION KEY=VALUE ..." or LABEL=label, comments from '#',
and continuation blocks "ACTION ..." ... "... ACTION". Anything else is refused (ValueError), so a
file that uses more than this cannot pass silently.

Values are numpy arrays over frames: evaluate(text, values, positions) takes the values named by
ARGs that the file itself does not define (name -> (frames,)) and, for DISTANCE, the atom
positions (frames, atoms, 3); it returns every value defined, name -> (frames,).
"""
import re

import numpy as np

TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(\S))")
FUNCTIONS = {
    "max": np.maximum, "min": np.minimum, "step": lambda x: np.where(x > 0, 1.0, 0.0), "tanh": np.tanh,
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs, "sin": np.sin, "cos": np.cos,
}


def actions(text):
    """The actions of a PLUMED input as (label, name, {KEY: value}, [flags])."""
    lines, block = [], None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if block is not None:
            if line.startswith("..."):
                lines.append(" ".join(block))
                block = None
            else:
                block.append(line)
            continue
        if line.endswith("..."):
            block = [line[:-3].strip()]
            continue
        lines.append(line)
    if block is not None:
        raise ValueError("a continuation block is not closed")
    out = []
    for line in lines:
        words = line.split()
        label = None
        if words[0].endswith(":"):
            label = words.pop(0)[:-1]
        name, keys, flags = words[0], {}, []
        for w in words[1:]:
            if "=" in w:
                k, v = w.split("=", 1)
                keys[k] = v
            else:
                flags.append(w)
        if "LABEL" in keys:
            label = keys.pop("LABEL")
        if label is None:
            raise ValueError("an action without a label: " + line[:60])
        out.append((label, name, keys, flags))
    return out


def lepton(func, env):
    """Evaluates a lepton expression over arrays (env: variable -> array)."""
    py, pos = [], 0
    while pos < len(func):
        m = TOKEN.match(func, pos)
        if not m or m.end() == pos:
            raise ValueError("cannot read the expression at: " + func[pos:pos + 20])
        num, ident, op = m.groups()
        pos = m.end()
        if num is not None:
            py.append(num)
        elif ident is not None:
            if ident in env:
                py.append("env[%r]" % ident)
            elif ident in FUNCTIONS:
                py.append("fn[%r]" % ident)
            else:
                raise ValueError("unknown name '%s' in %s" % (ident, func))
        elif op in "+-*/(),":
            py.append(op)
        elif op == "^":
            py.append("**")
        else:
            raise ValueError("unknown operator '%s' in %s" % (op, func))
    return eval("".join(py), {"__builtins__": {}}, {"env": env, "fn": FUNCTIONS})


def floats(text):
    return np.array([float(v) for v in text.split(",")])


def evaluate(text, values=None, positions=None):
    vals = dict(values or {})
    for label, name, keys, flags in actions(text):
        args = keys.get("ARG", "").split(",") if "ARG" in keys else []
        for a in args:
            if a not in vals:
                raise ValueError("%s: ARG %s is not defined" % (label, a))
        x = [vals[a] for a in args]
        if name == "DISTANCE":
            i, j = (int(v) - 1 for v in keys["ATOMS"].split(","))
            vals[label] = np.linalg.norm(positions[:, i, :] - positions[:, j, :], axis=1)
        elif name == "COMBINE":
            n = len(x)
            c = floats(keys["COEFFICIENTS"]) if "COEFFICIENTS" in keys else np.ones(n)
            p = floats(keys["PARAMETERS"]) if "PARAMETERS" in keys else np.zeros(n)
            e = floats(keys["POWERS"]) if "POWERS" in keys else np.ones(n)
            v = sum(c[k] * (x[k] - p[k]) ** e[k] for k in range(n))
            vals[label] = v / c.sum() if "NORMALIZE" in flags else v
        elif name == "CUSTOM":
            var = keys["VAR"].split(",")
            if len(var) != len(x):
                raise ValueError("%s: %d VAR for %d ARG" % (label, len(var), len(x)))
            vals[label] = lepton(keys["FUNC"], dict(zip(var, x))) * np.ones_like(x[0])
        elif name == "ANN":
            nodes = [int(v) for v in keys["NUM_NODES"].split(",")]
            acts = keys["ACTIVATIONS"].split(",")
            if int(keys["NUM_LAYERS"]) != len(nodes) or len(acts) != len(nodes) - 1 or len(x) != nodes[0]:
                raise ValueError("%s: NUM_LAYERS, NUM_NODES, ACTIVATIONS and ARG disagree" % label)
            h = np.stack(x, axis=1)
            for i in range(len(nodes) - 1):
                W = floats(keys["WEIGHTS%d" % i]).reshape(nodes[i + 1], nodes[i])
                h = h @ W.T + floats(keys["BIASES%d" % i])
                if acts[i] == "Tanh":
                    h = np.tanh(h)
                elif acts[i] != "Linear":
                    raise ValueError("%s: activation %s is not known here" % (label, acts[i]))
            for k in range(nodes[-1]):
                vals["%s.node-%d" % (label, k)] = h[:, k]
        else:
            raise ValueError("%s: action %s is not known to this evaluator" % (label, name))
    return vals
