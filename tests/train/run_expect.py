#!/usr/bin/env python3
"""Runs a command and checks its exit code and output.

usage: run_expect.py --exit N [--stderr REGEX]... [--stdout REGEX]... [--stdout-not REGEX]...
                      [--absent PATH]... -- COMMAND...
Each REGEX must match somewhere in that stream, each --stdout-not REGEX nowhere in standard output;
each --absent PATH is removed before the run and must not exist afterwards.
Exit 0 when all holds, 1 otherwise (the command's output is echoed)."""
import os
import re
import shutil
import subprocess
import sys


def main():
    argv = sys.argv[1:]
    cut = argv.index("--")
    opts, cmd = argv[:cut], argv[cut + 1:]
    code, want = None, {"--stderr": [], "--stdout": [], "--stdout-not": [], "--absent": []}
    for key, value in zip(opts[::2], opts[1::2]):
        if key == "--exit":
            code = int(value)
        else:
            want[key].append(value)
    for path in want["--absent"]:
        shutil.rmtree(path, ignore_errors=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(p.stdout[-4000:])
    sys.stdout.write(p.stderr[-4000:])
    bad = []
    if code is not None and p.returncode != code:
        bad.append(f"exit code {p.returncode}, expected {code}")
    for stream, text in (("--stderr", p.stderr), ("--stdout", p.stdout)):
        bad += [f"{stream[2:]} lacks /{r}/" for r in want[stream] if not re.search(r, text, re.M)]
    bad += [f"stdout has /{r}/" for r in want["--stdout-not"] if re.search(r, p.stdout, re.M)]
    bad += [f"{path} exists" for path in want["--absent"] if os.path.exists(path)]
    for b in bad:
        print("FAIL:", b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
