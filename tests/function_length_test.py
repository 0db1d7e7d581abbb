#!/usr/bin/python3
"""tests/function_length.py finds what it is there to find: on small made-up files, a
function over the limit (free, member, constructor with an initializer list, template)
is reported with its name and length, one at the limit is not, braces in strings,
comments, raw strings and preprocessor lines do not count, lambdas and blocks count
toward the function around them, namespace-scope initializers are no functions, a
`// long:` reason above or on the first line passes (a bare marker does not), the
allowlist passes a named function and notes stale entries, and tests are skipped; on the
real tree, the check passes.
Usage: tests/function_length_test.py --repo REPO
"""
import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import function_length  # noqa: E402

ARGS = None


def body(lines):
    """A function body of exactly `lines` lines, braces included."""
    return "{\n" + "".join(f"  x += {i};\n" for i in range(lines - 2)) + "}\n"


class SmallFiles(unittest.TestCase):
    def setUp(self):
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="distopt-function-length-"))

    def tearDown(self):
        shutil.rmtree(self.root)

    def run_check(self, text, name="src/a/a.cc", allowed=(), max_lines=10):
        p = self.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return function_length.check(self.root, [p], max_lines, set(allowed))

    def names(self, text, **kw):
        failures, _, _ = self.run_check(text, **kw)
        return [f.split(": ")[1].split(" is ")[0] for f in failures]

    def test_free_function_over_the_limit_is_reported_with_its_length(self):
        failures, _, _ = self.run_check("int Long() " + body(11) + "int Short() " + body(10))
        self.assertEqual(len(failures), 1, failures)
        self.assertIn("src/a/a.cc:1: Long is 11 lines (over 10)", failures[0])

    def test_members_constructors_and_templates_are_found(self):
        text = ("namespace n {\nclass C : public B {\n public:\n"
                "  C(int a) : a_(a), b_{a} " + body(12) +
                "  void M() const override " + body(12) + "};\n"
                "template <typename T>\nT C::Out(T v) noexcept " + body(12) + "}  // n\n")
        self.assertEqual(self.names(text), ["C", "M", "C::Out"])

    def test_literals_comments_and_preprocessor_braces_do_not_count(self):
        text = ('void F() {\n  const char* s = "}}}}";\n  char c = \'}\';\n'
                '  // }}}\n  /* { */\n  auto r = R"x({)x";\n#define X }\n  int n = 1\'000;\n'
                + "".join("  x++;\n" for _ in range(4)) + "}\n")
        self.assertEqual(self.names(text), ["F"])  # 14 lines, one function

    def test_lambdas_and_blocks_belong_to_their_function(self):
        text = "void F() {\n  auto f = [&](int a) {\n    if (a) {\n" + \
               "".join("      x++;\n" for _ in range(8)) + "    }\n  };\n}\n"
        self.assertEqual(self.names(text), ["F"])

    def test_namespace_scope_initializers_are_not_functions(self):
        text = "const int kTable[] = {\n" + "".join(f"  {i},\n" for i in range(20)) + "};\n"
        self.assertEqual(self.names(text), [])

    def test_a_long_reason_passes_and_a_bare_marker_does_not(self):
        above = "// Some words.\n// long: a table of every setting, one row each.\nint F() "
        self.assertEqual(self.names(above + body(20)), [])
        same_line = "int F() {  // long: one state machine, its cases side by side\n" + \
                    body(20)[2:]
        self.assertEqual(self.names(same_line), [])
        self.assertEqual(self.names("// long:\nint F() " + body(20)), ["F"])
        self.assertEqual(self.names("// long: a reason, not beside it\n\nint F() " + body(20)),
                         ["F"])  # a blank line between: not its comment

    def test_allowlist_passes_the_named_function_and_notes_stale_entries(self):
        text = "int Long() " + body(20) + "int Other() " + body(20)
        failures, hits, stale = self.run_check(
            text, allowed={("src/a/a.cc", "Long"), ("src/a/a.cc", "Gone")})
        self.assertEqual(len(failures), 1)
        self.assertIn("Other", failures[0])
        self.assertEqual(len(hits), 1)
        self.assertEqual(stale, ["src/a/a.cc Gone"])

    def test_tests_are_skipped(self):
        self.assertEqual(self.names("void T() " + body(50), name="src/a/a_test.cc"), [])

    def test_main_exits_1_on_a_violation(self):
        (self.root / "src").mkdir()
        (self.root / "src" / "x.cc").write_text("int F() " + body(90))
        self.assertEqual(function_length.main(["--root", str(self.root)]), 1)
        (self.root / "src" / "x.cc").write_text("int F() " + body(80))
        self.assertEqual(function_length.main(["--root", str(self.root)]), 0)


class RealTree(unittest.TestCase):
    def test_the_tree_passes(self):
        self.assertEqual(function_length.main(["--root", ARGS.repo]), 0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ARGS, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest)
