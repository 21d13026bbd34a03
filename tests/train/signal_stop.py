#!/usr/bin/env python3
"""A stop signal during training: the run writes a checkpoint, exits 3, and --restart finishes it.

usage: signal_stop.py OUTPUT_DIR -- MPIEXEC-COMMAND...   (the command runs dynae-mpi with
many epochs; this script adds --set output.dir=OUTPUT_DIR, and --restart for the second run)
Sends SIGUSR1 to mpiexec (which forwards it to the ranks) once the first checkpoint exists."""
import os
import shutil
import signal
import subprocess
import sys
import time


def main():
    cut = sys.argv.index("--")
    out = sys.argv[1]
    cmd = sys.argv[cut + 1:] + ["--set", f"output.dir={out}"]
    shutil.rmtree(out, ignore_errors=True)
    ckpt = os.path.join(out, "checkpoint.h5")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not os.path.exists(ckpt) and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if p.poll() is not None:
        print(p.stdout.read()[-2000:], p.stderr.read()[-2000:])
        print(f"FAIL: the run ended (exit {p.returncode}) before it was signalled")
        return 1
    p.send_signal(signal.SIGUSR1)
    out_text, err_text = p.communicate(timeout=120)
    print(err_text[-2000:])
    bad = []
    if p.returncode != 3:
        bad.append(f"exit code {p.returncode} after the signal, expected 3")
    if "stopped by a signal after epoch" not in err_text or "--restart" not in err_text:
        bad.append("no message saying where it stopped and how to resume")
    # The resumed run finishes with few epochs (the checkpoint may already be past them).
    r = subprocess.run(cmd + ["--restart", "--set", "train.epochs=3"], capture_output=True, text=True, timeout=300)
    print(r.stdout[-1000:], r.stderr[-2000:])
    if r.returncode != 0:
        bad.append(f"--restart exit code {r.returncode}")
    if "# resuming from" not in r.stdout:
        bad.append("--restart did not say where it resumed from")
    if not os.path.exists(os.path.join(out, "results.h5")):
        bad.append("no results.h5 after the restart")
    for b in bad:
        print("FAIL:", b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
