"""Shared helpers of the tools' tests: run a tool, check its exit code, fail loudly."""
import os
import subprocess
import sys

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")


def run(tool, *args, expect=0):
    """Runs tools/<tool> with this interpreter; returns stdout; fails on an unexpected exit code."""
    cmd = [sys.executable, os.path.join(TOOLS, tool), *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != expect:
        sys.stderr.write(p.stdout + p.stderr)
        fail(f"{' '.join(cmd)}: exit code {p.returncode}, expected {expect}")
    if expect == 2 and "error" not in p.stderr:
        fail(f"{' '.join(cmd)}: exit code 2 without an error message")
    return p.stdout


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def main(cases, argv):
    """Runs the named test case (one per ctest test) in a fresh temporary folder."""
    import tempfile
    if len(argv) != 2 or argv[1] not in cases:
        print(f"usage: {argv[0]} {{{','.join(cases)}}}", file=sys.stderr)
        sys.exit(2)
    with tempfile.TemporaryDirectory() as tmp:
        cases[argv[1]](tmp)
    print(f"{argv[1]}: ok")
