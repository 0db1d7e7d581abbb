#!/usr/bin/env python3
"""Checks the include graph of DESIGN.md's layers: a file under src/<layer>/
may include (with quotes) only headers of its own layer and of the layers it
depends on, and a public header (include/distopt/) never includes an internal
one. Prints every violation as file:line and exits 1 if there is any."""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Direct dependencies, as in each layer's CMakeLists.txt.
DEPS = {
    "base": [],
    "wire": ["base"],
    "transport": ["base", "wire"],
    "cluster": ["base", "wire", "transport"],
    "optim": ["base"],
    "compress": ["base"],
    "kv": ["base", "wire", "transport", "cluster", "optim"],
    "data": ["base"],
    "ml": ["base", "data"],
    "train": ["base", "data", "ml", "kv", "optim", "wire", "transport", "cluster"],
    "cli": None,  # the top: may include anything
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def allowed(layer):
    if DEPS[layer] is None:
        return None
    return {layer, *DEPS[layer]}


def main():
    bad = []
    for path in sorted((ROOT / "src").rglob("*")):
        if path.suffix not in (".h", ".cc"):
            continue
        layer = path.relative_to(ROOT / "src").parts[0]
        ok = allowed(layer)
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m or ok is None:
                continue
            target = m.group(1).split("/")[0]
            if "/" not in m.group(1) or target == "distopt":
                continue  # same-folder or public include
            if target not in ok:
                bad.append(f"{path.relative_to(ROOT)}:{n}: layer '{layer}' includes "
                           f"'{m.group(1)}' from layer '{target}' (allowed: {sorted(ok)})")
    for path in sorted((ROOT / "include" / "distopt").rglob("*.h")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = INCLUDE.match(line)
            if m and not m.group(1).startswith("distopt/"):
                bad.append(f"{path.relative_to(ROOT)}:{n}: public header includes internal "
                           f"'{m.group(1)}'")
    for b in bad:
        print(b)
    print(f"include graph: {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
