#!/usr/bin/python3
"""tests/include_graph.py finds what it is there to find: on a small tree with a made-up
target graph, each rule's violation (an include of a target not linked, a PRIVATE link
that does not pass on, a link up the layers, a public header including an internal one, a
file no target builds) and nothing on the clean tree; and on a copy of the real tree with
the real graph, no violation, then exactly the one forbidden include planted in it.
Usage: tests/include_graph_test.py --graph BUILD/target_graph.json --repo REPO
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import include_graph  # noqa: E402

ARGS = None


def write(root, rel, text):
    p = pathlib.Path(root) / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def lib(sources, links=(), interface_links=None):
    return {"type": "STATIC_LIBRARY", "sources": list(sources), "links": list(links),
            "interface_links": list(links if interface_links is None else interface_links)}


class SmallTree(unittest.TestCase):
    """base <- kv <- train, each a library with a header and a source."""

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="distopt-include-graph-")
        write(self.root, "src/base/a.h", "#pragma once\n")
        write(self.root, "src/base/a.cc", '#include "base/a.h"\n')
        write(self.root, "src/base/only_header.h", "#pragma once\n")
        write(self.root, "src/kv/k.h", '#pragma once\n#include "base/a.h"\n')
        write(self.root, "src/kv/k.cc", '#include "kv/k.h"\n#include "base/only_header.h"\n')
        write(self.root, "src/train/t.h", "#pragma once\n")
        write(self.root, "src/train/t.cc",
              '#include "train/t.h"\n#include "kv/k.h"\n#include "base/a.h"\n#include <vector>\n')
        write(self.root, "include/distopt/p.h", '#pragma once\n#include "distopt/q.h"\n')
        write(self.root, "include/distopt/q.h", "#pragma once\n")
        self.graph = {"layers": ["base", "kv", "train"], "targets": {
            "distopt_base": lib(["src/base/a.cc"]),
            "distopt_kv": lib(["src/kv/k.cc"], ["distopt_base"]),
            "distopt_train": lib(["src/train/t.cc"], ["distopt_kv"]),
        }}

    def tearDown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def check(self):
        return include_graph.check(self.root, include_graph.Graph(self.graph))

    def test_clean_tree_has_no_violation(self):
        # train sees base through kv's PUBLIC link; the header-only base header belongs to base.
        self.assertEqual(self.check(), [])

    def test_include_of_a_target_not_linked_is_reported_with_its_line(self):
        write(self.root, "src/kv/k.cc", '#include "kv/k.h"\n\n#include "train/t.h"\n')
        (bad,) = self.check()
        self.assertTrue(bad.startswith("src/kv/k.cc:3: includes 'train/t.h' of distopt_train, "
                                       "which distopt_kv does not link"), bad)

    def test_a_header_is_checked_against_its_own_target(self):
        write(self.root, "src/kv/k.h", '#pragma once\n#include "train/t.h"\n')
        (bad,) = self.check()
        self.assertTrue(bad.startswith("src/kv/k.h:2: includes 'train/t.h'"), bad)

    def test_a_private_link_is_not_passed_on(self):
        self.graph["targets"]["distopt_kv"]["interface_links"] = []
        (bad,) = self.check()
        self.assertTrue(bad.startswith("src/train/t.cc:3: includes 'base/a.h' of distopt_base"),
                        bad)

    def test_a_link_up_the_layers_is_reported(self):
        self.graph["targets"]["distopt_base"]["links"] = ["distopt_train"]
        bad = self.check()
        self.assertIn("distopt_base (layer 'base') links distopt_train of the higher layer "
                      "'train'", bad)

    def test_a_public_header_including_an_internal_one_is_reported(self):
        write(self.root, "include/distopt/p.h", '#pragma once\n#include "base/a.h"\n')
        self.assertEqual(self.check(),
                         ["include/distopt/p.h:2: public header includes internal 'base/a.h'"])

    def test_a_file_no_target_builds_is_reported(self):
        write(self.root, "src/kv/stray.cc", '#include "train/t.h"\n')
        self.assertEqual(self.check(), ["src/kv/stray.cc: belongs to no target (not built, so "
                                        "its includes are unchecked)"])


class RealTree(unittest.TestCase):
    """The real graph of this build on a copy of the real tree."""

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="distopt-include-graph-real-")
        for top in ("src", "include", "tests", "bench", "fuzz"):
            if os.path.isdir(os.path.join(ARGS.repo, top)):
                shutil.copytree(os.path.join(ARGS.repo, top), os.path.join(self.root, top),
                                ignore=shutil.ignore_patterns("*.py", "*.json", "*.svg"))

    def tearDown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def run_checker(self):
        return subprocess.run([sys.executable, os.path.join(ARGS.repo, "tests", "include_graph.py"),
                               "--graph", ARGS.graph, "--root", self.root],
                              capture_output=True, text=True, timeout=60)

    def test_graph_is_the_builds(self):
        with open(ARGS.graph) as f:
            g = json.load(f)
        # What src/kv/CMakeLists.txt and src/cli/CMakeLists.txt declare, read from the build.
        self.assertEqual(sorted(g["targets"]["distopt_kv"]["links"]),
                         ["distopt_base", "distopt_cluster", "distopt_optim", "distopt_transport",
                          "distopt_wire"])
        self.assertIn("distopt_cli", g["targets"]["distopt-bench-kv"]["links"])
        self.assertNotIn("src/cli/bench_kv.cc", g["targets"]["distopt_cli"]["sources"])

    def test_forbidden_include_planted_in_the_real_tree_is_the_one_violation(self):
        r = self.run_checker()
        self.assertEqual(r.returncode, 0, r.stdout)
        layout = pathlib.Path(self.root, "src", "kv", "layout.cc")
        lines = layout.read_text().splitlines()
        lines.insert(1, '#include "train/trainer.h"')  # kv must not know about training
        layout.write_text("\n".join(lines) + "\n")
        r = self.run_checker()
        self.assertEqual(r.returncode, 1, r.stdout)
        bad = [l for l in r.stdout.splitlines() if not l.startswith("include graph:")]
        self.assertEqual(len(bad), 1, r.stdout)
        self.assertTrue(bad[0].startswith("src/kv/layout.cc:2: includes 'train/trainer.h' of "
                                          "distopt_train, which distopt_kv does not link"), bad[0])
        self.assertIn("1 violation(s)", r.stdout)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--graph", required=True)
    p.add_argument("--repo", required=True)
    ARGS, rest = p.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
