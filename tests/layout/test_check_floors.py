#!/usr/bin/env python3
"""check_floors.py must fail on an upward include, an include without its floor and a file outside
the floor folders, and pass on a tree that keeps to the floors."""
import os
import subprocess
import sys
import tempfile


def run(checker, files):
    with tempfile.TemporaryDirectory() as top:
        for rel, text in files.items():
            path = os.path.join(top, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        return subprocess.run([sys.executable, checker, top], capture_output=True, text=True)


def main():
    checker = sys.argv[1]
    good = {"include/base/dy_common.h": "#pragma once\n", "include/nn/dy_nn.h": '#include "base/dy_common.h"\n',
            "src/nn/k.c": '#include "nn/dy_nn.h"\n', "src/app/a.c": '#include "nn/dy_nn.h"\n#include <stdio.h>\n'}
    cases = {
        "good": (good, 0, "ok: 0"),
        "upward": (dict(good, **{"src/nn/k.c": '#include "nn/dy_nn.h"\n#include "app/dy_app.h"\n',
                                 "include/app/dy_app.h": "#pragma once\n"}), 1, "from the higher floor 'app'"),
        "bare": (dict(good, **{"src/app/a.c": '#include "dy_nn.h"\n'}), 1, "without its floor"),
        "stray": (dict(good, **{"src/misc.c": "int x;\n"}), 1, "not in a floor folder"),
    }
    failed = 0
    for name, (files, code, text) in cases.items():
        r = run(checker, files)
        ok = r.returncode == code and text in r.stdout
        print(f"{'ok' if ok else 'FAIL'}: {name} (exit {r.returncode})")
        if not ok:
            print(r.stdout, r.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
