#!/usr/bin/python3
"""Finds C++ functions longer than 80 lines in src/ and bench/ (STYLE.md: no function over
~80 lines without a reason written beside it). Tests (*_test.cc) are not checked.

A function's length is the lines from its opening brace to its closing brace, both
included. A long function passes when its reason is written beside it: a `//` comment
holding the marker `long:` followed by the reason, either on the function's first line
(where its declaration starts) or in the comment block directly above it:

    // long: one row per setting; a table reads best in one piece.
    const std::vector<Field>& Fields() {

The allowlist file (tests/function_length_allowlist.txt) names long functions that are
known and waiting to be split, one `path name` per line (`#` starts a comment): they are
reported but do not fail the check. An entry that no longer names a long function is
reported as stale (so it can be removed) without failing.

The parser is a heuristic, not a C++ front end: comments, string and character literals
and preprocessor lines are blanked out, then braces are matched. A `{` at file, namespace
or class scope opens a function body when what precedes it ends in a parameter list
(`)` followed only by qualifiers, a trailing return type or a constructor's initializer
list); namespaces, classes, enums and initializers are scopes to look into or skip.
Braces inside a function body (blocks, lambdas, initializers) belong to that function.

Prints every long function as path:line and exits 1 if one is neither marked nor allowed.
Usage: tests/function_length.py --root REPO [--max 80] [--allowlist FILE] [paths...]
"""
import argparse
import pathlib
import re
import sys

MARKER = "long:"
MIN_REASON_CHARS = 10  # "long:" must be followed by a reason, not left bare
DEFAULT_MAX = 80
DEFAULT_DIRS = ("src", "bench")
SUFFIXES = (".cc", ".h")

CONTAINER = re.compile(r"\b(namespace|class|struct|union|enum)\b")
EXTERN_C = re.compile(r"^\s*extern\s*$")
# What may follow a function's parameter list before its body.
QUALIFIERS = re.compile(
    r"\)\s*(?:const|volatile|override|final|noexcept|mutable|&&|&|\s)*"
    r"(?:noexcept\s*\([^()]*\)\s*)?"
    r"(?:->\s*[\w:<>,\s*&]+?)?"
    r"(?:\s*(?:const|override|final|noexcept|\s))*$")
# A constructor's initializer list: `) : member_(...)` (not `::`).
INIT_LIST = re.compile(r"\)\s*(?:noexcept\s*)?:(?!:)")


def blank_code(text):
    """`text` with comments, literals and preprocessor lines replaced by spaces (newlines
    kept, so offsets and line numbers stay), and the comment text of each line."""
    out = []
    comments = {}  # line number (1-based) -> comment text on that line
    i, n, line = 0, len(text), 1
    at_line_start = True

    def note(s):
        comments[line] = comments.get(line, "") + s

    while i < n:
        c = text[i]
        if c == "\n":
            out.append(c)
            line += 1
            i += 1
            at_line_start = True
            continue
        if at_line_start and c in " \t":
            out.append(c)
            i += 1
            continue
        if at_line_start and c == "#":
            # A preprocessor line, with its continuations.
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out.append("  \n")
                    line += 1
                    i += 2
                    continue
                out.append(" ")
                i += 1
            continue
        at_line_start = False
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            note(text[i:j])
            out.append(" " * (j - i))
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            for ch in text[i:j]:
                if ch == "\n":
                    out.append("\n")
                    line += 1
                else:
                    out.append(" ")
            i = j
            continue
        m = re.match(r'(?:u8|[uUL])?R"([^()\\\s]{0,16})\(', text[i:i + 24])
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find(")" + m.group(1) + '"', i + m.end())
            j = n if end < 0 else end + len(m.group(1)) + 2
            for ch in text[i:j]:
                out.append("\n" if ch == "\n" else " ")
                line += ch == "\n"
            i = j
            continue
        if c in "\"'":
            # A digit separator (1'000) is not a character literal.
            if c == "'" and i > 0 and text[i - 1].isalnum() and i + 1 < n and text[i + 1].isalnum():
                out.append(" ")
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(" " * (j - i))
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out), comments


def function_name(head):
    """The (qualified) name before the first top-level parameter list of `head`."""
    h = re.sub(r"^\s*template\s*<[^{};]*?>\s*", "", head.strip())
    depth = 0
    for k, ch in enumerate(h):
        if ch in "<[":
            depth += 1
        elif ch in ">]":
            depth = max(depth - 1, 0)
        elif ch == "(" and depth == 0:
            m = re.search(r"((?:[\w~]+::)*(?:operator\s*\S+?|~?\w+))\s*$", h[:k])
            if m:
                return re.sub(r"\s+", "", m.group(1))
            break
    return h.split("(")[0].split()[-1] if h.split("(")[0].split() else "?"


def classify(head):
    """'function', 'container' or 'init' for a `{` at file/namespace/class scope."""
    stripped = head.rstrip()
    if QUALIFIERS.search(stripped) or INIT_LIST.search(stripped) and stripped.endswith(("}", ")")):
        return "function"
    if INIT_LIST.search(stripped):
        return "member-init"  # `b_{...}` inside a constructor's initializer list
    if EXTERN_C.match(stripped) or CONTAINER.search(stripped.split("(")[0]):
        return "container"
    return "init"


def find_functions(text):
    """(name, first_line, open_line, close_line) of every function body in `text`."""
    code, comments = blank_code(text)
    starts = [0]
    for k, ch in enumerate(code):
        if ch == "\n":
            starts.append(k + 1)

    def line_of(offset):
        lo, hi = 0, len(starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    found = []
    stack = []  # kinds of the open braces; a function's entry holds its details
    head_start = 0
    k = 0
    while k < len(code):
        ch = code[k]
        in_function = any(s[0] == "function" for s in stack)
        if ch == "{":
            if in_function or (stack and stack[-1][0] in ("init", "member-init")):
                stack.append(("block",))
            else:
                head = code[head_start:k]
                kind = classify(head)
                if kind == "function":
                    # Where the declaration starts: past any `public:` label.
                    lead = re.match(r"\s*(?:(?:public|private|protected)\s*:(?!:)\s*)*", head)
                    first = head_start + lead.end()
                    stack.append(("function", function_name(head), line_of(first), line_of(k)))
                else:
                    stack.append((kind,))
            k += 1
            if stack[-1][0] != "member-init":
                head_start = k
            continue
        if ch == "}":
            top = stack.pop() if stack else ("block",)
            if top[0] == "function":
                found.append((top[1], top[2], top[3], line_of(k)))
            k += 1
            if top[0] != "member-init" and not any(s[0] == "function" for s in stack):
                head_start = k
            continue
        if ch == ";" and not in_function and not (stack and stack[-1][0] in ("init",)):
            head_start = k + 1
        k += 1
    return found, comments


def has_reason(comments, first_line):
    """Whether the function starting at `first_line` carries a `long:` reason."""
    def ok(c):
        at = c.find(MARKER)
        return at >= 0 and len(c[at + len(MARKER):].strip()) >= MIN_REASON_CHARS

    if ok(comments.get(first_line, "")):
        return True
    line = first_line - 1
    while line in comments and comments[line].lstrip().startswith("//"):
        if ok(comments[line]):
            return True
        line -= 1
    return False


def read_allowlist(path):
    allowed = set()
    if path is None or not path.exists():
        return allowed
    for raw in path.read_text().splitlines():
        entry = raw.split("#", 1)[0].split()
        if len(entry) == 2:
            allowed.add((entry[0], entry[1]))
        elif entry:
            raise SystemExit(f"{path}: bad line (want 'path name'): {raw!r}")
    return allowed


def check(root, paths, max_lines, allowed):
    """(failures, allowed_hits, stale) as lists of text lines."""
    failures, hits, seen = [], [], set()
    for p in paths:
        rel = p.relative_to(root).as_posix()
        if p.name.endswith("_test.cc"):
            continue
        functions, comments = find_functions(p.read_text(errors="replace"))
        for name, first, open_line, close_line in functions:
            length = close_line - open_line + 1
            if length <= max_lines or has_reason(comments, first):
                continue
            where = f"{rel}:{first}: {name} is {length} lines (over {max_lines})"
            if (rel, name) in allowed:
                seen.add((rel, name))
                hits.append(where + " [allowlisted]")
            else:
                failures.append(where + f"; split it or write '// {MARKER} <why>' above it")
    stale = [f"{r} {n}" for r, n in sorted(allowed - seen)]
    return failures, hits, stale


def sources(root, dirs):
    out = []
    for d in dirs:
        base = root / d
        if base.is_file():
            out.append(base)
            continue
        for p in sorted(base.rglob("*")):
            if p.suffix in SUFFIXES and p.is_file() and "build" not in p.relative_to(root).parts:
                out.append(p)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".", type=pathlib.Path)
    ap.add_argument("--max", type=int, default=DEFAULT_MAX)
    ap.add_argument("--allowlist", type=pathlib.Path,
                    help="default: tests/function_length_allowlist.txt under --root")
    ap.add_argument("paths", nargs="*", help=f"files or folders under --root (default: "
                                             f"{' '.join(DEFAULT_DIRS)})")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    allow_path = args.allowlist or root / "tests" / "function_length_allowlist.txt"
    allowed = read_allowlist(allow_path)
    paths = sources(root, args.paths or DEFAULT_DIRS)
    failures, hits, stale = check(root, paths, args.max, allowed)
    for h in hits:
        print(h)
    for s in stale:
        print(f"note: stale allowlist entry (no longer a long function): {s}")
    for f in failures:
        print(f)
    print(f"{len(paths)} files, {len(failures)} long functions without a reason, "
          f"{len(hits)} allowlisted")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
