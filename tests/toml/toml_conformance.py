"""Runs the toml-test corpus (TOML 1.0.0 cases) through the decoder program.

usage: toml_conformance.py DECODER CORPUS_DIR
Valid cases must decode to the expected tagged JSON; invalid ones must be rejected with a
non-zero exit and a "line N: ..." message (a crash is a failure). Exits 77 when the corpus is absent, 1 on any failure."""
import json
import math
import os
import re
import subprocess
import sys

# Cases known not to pass, with the reason; the run fails if any other case fails (or if one of
# these starts passing, so the list stays true).
EXPECTED_FAILURES = {}


def norm_datetime(s):
    """RFC 3339 text as compared: 'T' and 'Z' upper case, a space separator as 'T', trailing zeros
    of the fraction of a second dropped."""
    s = s.upper()
    if len(s) > 10 and s[10] == " ":
        s = s[:10] + "T" + s[11:]
    m = re.match(r"^(.*?:\d\d)\.(\d+)(.*)$", s)
    if m:
        frac = m.group(2).rstrip("0")
        s = m.group(1) + ("." + frac if frac else "") + m.group(3)
    return s


def to_float(s):
    if s in ("inf", "+inf"):
        return math.inf
    if s == "-inf":
        return -math.inf
    if s in ("nan", "+nan", "-nan"):
        return math.nan
    return float(s)


def is_leaf(x):
    return isinstance(x, dict) and set(x) == {"type", "value"} and isinstance(x["value"], str)


def same(got, want, path="$"):
    """None when got matches want, else a description of the first difference."""
    if is_leaf(want):
        if not is_leaf(got):
            return f"{path}: expected a {want['type']}, got {json.dumps(got)[:80]}"
        if got["type"] != want["type"]:
            return f"{path}: type {got['type']} != {want['type']}"
        g, w = got["value"], want["value"]
        kind = want["type"]
        if kind == "float":
            a, b = to_float(g), to_float(w)
            ok = (math.isnan(a) and math.isnan(b)) or a == b
        elif kind == "integer":
            ok = int(g) == int(w)
        elif kind.startswith(("datetime", "date", "time")):
            ok = norm_datetime(g) == norm_datetime(w)
        else:
            ok = g == w
        return None if ok else f"{path}: {kind} {g!r} != {w!r}"
    if isinstance(want, dict):
        if not isinstance(got, dict) or is_leaf(got):
            return f"{path}: expected a table"
        if set(got) != set(want):
            return f"{path}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            d = same(got[k], want[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"{path}: expected an array of {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            d = same(g, w, f"{path}[{i}]")
            if d:
                return d
        return None
    return f"{path}: unexpected expected-value {want!r}"


def run(decoder, path):
    with open(path, "rb") as f:
        return subprocess.run([decoder], stdin=f, capture_output=True, timeout=20)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    decoder, corpus = sys.argv[1], sys.argv[2]
    listing = os.path.join(corpus, "tests", "files-toml-1.0.0")
    if not os.path.isfile(listing):
        print(f"toml-test corpus not found at {corpus}: skipped")
        return 77
    with open(listing) as f:
        cases = [line.strip() for line in f if line.strip().endswith(".toml")]
    base = os.path.join(corpus, "tests")
    failures = {}
    nvalid = ninvalid = valid_ok = invalid_ok = 0
    for case in cases:
        path = os.path.join(base, case)
        try:
            r = run(decoder, path)
        except subprocess.TimeoutExpired:
            failures[case] = "timed out"
            continue
        if case.startswith("valid/"):
            nvalid += 1
            if r.returncode != 0:
                failures[case] = f"rejected (exit {r.returncode}): {r.stderr.decode(errors='replace').strip()}"
                continue
            with open(path[:-5] + ".json", encoding="utf-8") as f:
                want = json.load(f)
            try:
                got = json.loads(r.stdout.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                failures[case] = f"decoder printed bad JSON: {e}"
                continue
            diff = same(got, want)
            if diff:
                failures[case] = diff
            else:
                valid_ok += 1
        else:
            ninvalid += 1
            message = r.stderr.decode(errors="replace")
            if r.returncode > 0 and re.match(r"line [1-9][0-9]*: \S", message):
                invalid_ok += 1
            elif r.returncode > 0:
                failures[case] = f"rejected without a 'line N: ...' message: {message.strip()[:120]!r}"
            elif r.returncode < 0:
                failures[case] = f"crashed with signal {-r.returncode}"
            else:
                failures[case] = "accepted"
    print(f"toml-test: {valid_ok}/{nvalid} valid passed, {invalid_ok}/{ninvalid} invalid rejected")
    unexpected = {c: why for c, why in failures.items() if c not in EXPECTED_FAILURES}
    fixed = [c for c in EXPECTED_FAILURES if c in cases and c not in failures]
    for c, why in sorted(unexpected.items()):
        print(f"FAIL {c}: {why}")
    for c in fixed:
        print(f"FAIL {c}: listed as an expected failure but passes now")
    for c in sorted(set(failures) & set(EXPECTED_FAILURES)):
        print(f"expected failure {c}: {EXPECTED_FAILURES[c]}")
    if unexpected or fixed:
        print(f"toml-test: FAILED ({len(unexpected)} unexpected failures)")
        return 1
    print(f"toml-test: PASSED ({len(failures)} expected failures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
