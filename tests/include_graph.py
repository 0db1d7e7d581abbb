#!/usr/bin/env python3
"""Checks the #includes of the tree against the dependencies CMake declares. The build
writes its target graph to <build>/target_graph.json at configure time
(cmake/target_graph.cmake): every target's sources, its links, and the links it passes on
(PUBLIC). There is no second copy of the layer dependencies here. Rules:

- a file may include (with quotes) a header of the tree only if the header belongs to its
  own target or to one that target links, directly or through a dependency's PUBLIC links
  (what CMake itself makes visible to it);
- a target under src/<layer>/ links only targets of its own layer or a lower one, in the
  order of src/CMakeLists.txt (DESIGN.md: layers only include downward);
- a public header (include/distopt/) includes only public headers;
- every file under src/ of a layer that is built belongs to a target.

A .cc belongs to the targets that build it, a header to the targets that build the .cc
beside it; a header without one belongs to the libraries that build a file in its folder
(or, if none, to every target that does), looking one folder up at a time.
Prints every violation as file:line and exits 1 if there is any.

Usage: tests/include_graph.py --graph build/release/target_graph.json [--root REPO]
"""
import argparse
import json
import pathlib
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
SOURCE_SUFFIXES = (".h", ".cc")


class Graph:
    """The target graph: who builds which file, who may see whose headers."""

    def __init__(self, data):
        self.layers = data["layers"]
        self.targets = data["targets"]
        self.builders = {}  # relative path -> targets that compile it
        for name, t in self.targets.items():
            for src in t["sources"]:
                self.builders.setdefault(src, set()).add(name)
        self._visible = {}

    def passed_on(self, name, seen=None):
        """`name` and what it passes on to its dependants (its PUBLIC links, recursively)."""
        seen = set() if seen is None else seen
        if name in seen:
            return seen
        seen.add(name)
        for d in self.targets[name]["interface_links"]:
            self.passed_on(d, seen)
        return seen

    def visible(self, name):
        """The targets whose headers `name` may include: itself and what its links pass on."""
        if name not in self._visible:
            out = {name}
            for d in self.targets[name]["links"]:
                out |= self.passed_on(d)
            self._visible[name] = out
        return self._visible[name]

    def is_library(self, name):
        return self.targets[name]["type"].endswith("_LIBRARY")

    def owners(self, rel):
        """The targets a file of the tree belongs to (empty: none)."""
        if rel.suffix != ".h":
            return self.builders.get(rel.as_posix(), set())
        beside = self.builders.get(rel.with_suffix(".cc").as_posix())
        if beside:
            return beside
        for folder in rel.parents:
            if folder == pathlib.Path("."):
                break
            in_folder = set()
            for src, names in self.builders.items():
                if pathlib.PurePosixPath(src).parent == pathlib.PurePosixPath(folder.as_posix()):
                    in_folder |= names
            libraries = {n for n in in_folder if self.is_library(n)}
            if libraries or in_folder:
                return libraries or in_folder
        return set()

    def layer_of(self, name):
        """The src/<layer> of a target's sources, or None (tests, benchmarks)."""
        for src in self.targets[name]["sources"]:
            parts = pathlib.PurePosixPath(src).parts
            if len(parts) > 2 and parts[0] == "src" and parts[1] in self.layers:
                return parts[1]
        return None


def resolve(root, including, name):
    """The file of the tree an #include "name" in `including` reads, as the compiler finds
    it (the including file's folder, then -I src, then -I include), or None."""
    for base in (including.parent, root / "src", root / "include"):
        p = base / name
        if p.is_file():
            return p.resolve().relative_to(root)
    return None


def check_layer_order(graph):
    bad = []
    rank = {layer: i for i, layer in enumerate(graph.layers)}
    for name in sorted(graph.targets):
        mine = graph.layer_of(name)
        if mine is None:
            continue
        for d in graph.targets[name]["links"]:
            theirs = graph.layer_of(d)
            if theirs is not None and rank[theirs] > rank[mine]:
                bad.append(f"{name} (layer '{mine}') links {d} of the higher layer '{theirs}'")
    return bad


def check_file(root, graph, rel, owners):
    bad = []
    visible = set().union(*(graph.visible(o) for o in owners))
    path = root / rel
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        m = INCLUDE.match(line)
        if not m:
            continue
        target = resolve(root, path, m.group(1))
        if target is None or target.parts[0] == "include":
            continue  # not a file of the tree (a library's), or a public header
        theirs = graph.owners(target)
        if not theirs:
            bad.append(f"{rel}:{n}: includes '{m.group(1)}' ({target}), which no target builds")
        elif not theirs & visible:
            bad.append(f"{rel}:{n}: includes '{m.group(1)}' of {', '.join(sorted(theirs))}, "
                       f"which {', '.join(sorted(owners))} does not link "
                       f"(it sees: {', '.join(sorted(visible))})")
    return bad


def tree_files(root, graph):
    """Every .h/.cc the build compiles or could include: the built sources and the
    headers beside them, and everything under src/ and include/."""
    files = {pathlib.Path(s) for s in graph.builders}
    for s in list(files):
        files |= {p.relative_to(root) for p in (root / s).parent.glob("*.h")}
    for top in ("src", "include"):
        files |= {p.relative_to(root) for p in (root / top).rglob("*")
                  if p.suffix in SOURCE_SUFFIXES}
    return sorted(f for f in files if f.suffix in SOURCE_SUFFIXES and (root / f).is_file())


def check(root, graph):
    """Every violation in the tree at `root` against `graph`, as printable lines."""
    root = pathlib.Path(root).resolve()
    bad = check_layer_order(graph)
    built_layers = {graph.layer_of(n) for n in graph.targets} - {None}
    for rel in tree_files(root, graph):
        if rel.parts[0] == "include":
            for n, line in enumerate((root / rel).read_text().splitlines(), 1):
                m = INCLUDE.match(line)
                if m and not m.group(1).startswith("distopt/"):
                    bad.append(f"{rel}:{n}: public header includes internal '{m.group(1)}'")
            continue
        owners = graph.owners(rel)
        if owners:
            bad += check_file(root, graph, rel, owners)
        elif rel.parts[0] == "src" and len(rel.parts) > 2 and rel.parts[1] in built_layers:
            bad.append(f"{rel}: belongs to no target (not built, so its includes are unchecked)")
    return bad


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--graph", required=True, help="target_graph.json of a configured build")
    p.add_argument("--root", default=pathlib.Path(__file__).resolve().parent.parent,
                   help="the source tree (default: this script's)")
    args = p.parse_args(argv)
    with open(args.graph) as f:
        graph = Graph(json.load(f))
    bad = check(args.root, graph)
    for b in bad:
        print(b)
    print(f"include graph: {len(graph.targets)} targets, {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
