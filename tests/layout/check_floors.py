#!/usr/bin/env python3
"""The floors of src/ and include/: a file includes only from its own floor or those below.

Floors, from the ground up: base, nn, parallel, analysis, io, app. Every project include must be
written with its floor ("nn/dy_model.h"), every source and header must live in a floor folder, and
src/<floor>/ and include/<floor>/ go together. Exit 0 when the tree keeps to this, 1 with one line
per breach otherwise, 2 on bad arguments."""
import os
import re
import sys

FLOORS = ["base", "nn", "parallel", "analysis", "io", "app"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def breaches(top):
    out = []
    for part in ("src", "include"):
        root = os.path.join(top, part)
        for dirpath, _, files in os.walk(root):
            for name in sorted(files):
                if not name.endswith((".c", ".h", ".h.in")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, top)
                floor = os.path.relpath(dirpath, root).split(os.sep)[0]
                if floor not in FLOORS:
                    out.append(f"{rel}: not in a floor folder ({', '.join(FLOORS)})")
                    continue
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                for m in INCLUDE.finditer(text):
                    inc = m.group(1)
                    line = text.count("\n", 0, m.start()) + 1
                    head = inc.split("/")[0]
                    if "/" not in inc:
                        if inc.startswith("dy_"):
                            out.append(f"{rel}:{line}: includes \"{inc}\" without its floor")
                        continue
                    if head not in FLOORS:
                        continue
                    if not os.path.exists(os.path.join(top, "include", inc)) and not inc.endswith("dy_version.h"):
                        out.append(f"{rel}:{line}: includes \"{inc}\", which is not under include/")
                    if FLOORS.index(head) > FLOORS.index(floor):
                        out.append(f"{rel}:{line}: floor '{floor}' includes \"{inc}\" from the higher floor '{head}'")
    return out


def main():
    if len(sys.argv) != 2 or not os.path.isdir(os.path.join(sys.argv[1], "src")):
        print("usage: check_floors.py SOURCE_TOP", file=sys.stderr)
        return 2
    bad = breaches(sys.argv[1])
    for b in bad:
        print(b)
    print(f"{'FAIL' if bad else 'ok'}: {len(bad)} breach(es) of the floors")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
