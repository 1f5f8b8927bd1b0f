"""The shape of the code: modules and their lengths, the import graph and its circles, and the
time `hgx --help` takes.

    python tools/layout.py [ROOT]      # ROOT: a checkout (default: this one)

Reads every module under ROOT/hgx with ``ast`` (nothing is imported), resolves each
``import``/``from ... import`` that names an hgx module (function-level imports included: a
circle through a lazy import is still a circle a reader has to follow), and finds the circles
as the strongly connected components of that graph (Tarjan). Then times `python -m hgx
--help` in a fresh process (median of 5) from ROOT.
"""
from __future__ import annotations

import ast
import statistics
import subprocess
import sys
import time
from pathlib import Path


def modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in sorted((root / "hgx").rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rsplit(".", 1)[0] if "." in t else ""
            if t and t != name:
                found.add(t)
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def help_seconds(root: Path, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hgx", "--help"], cwd=root, capture_output=True,
                       check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> dict:
    root = Path((argv or sys.argv[1:] or ["."])[0]).resolve()
    mods = modules(root)
    # a package's __init__ importing its own submodules is not a circle a reader follows
    graph = {}
    for n, p in mods.items():
        deps = imports(n, p, set(mods))
        if p.name == "__init__.py":
            deps = {d for d in deps if not d.startswith(n + ".")}
        graph[n] = deps
    lengths = {n: len(p.read_text().splitlines()) for n, p in mods.items()}
    over = {n: k for n, k in sorted(lengths.items(), key=lambda kv: -kv[1]) if k > 400}
    cyc = circles(graph)
    result = {"modules": len(mods), "lines": sum(lengths.values()),
              "longest": dict(sorted(lengths.items(), key=lambda kv: -kv[1])[:8]),
              "over_400": over, "circles": cyc, "help_seconds": help_seconds(root)}
    print(f"{result['modules']} modules, {result['lines']} lines; over 400 lines: "
          + (", ".join(f"{n} ({k})" for n, k in over.items()) or "none"))
    print("longest: " + ", ".join(f"{n} {k}" for n, k in result["longest"].items()))
    print("import circles: " + ("; ".join(" <-> ".join(c) for c in cyc) or "none"))
    print(f"`python -m hgx --help`: {result['help_seconds']:.2f} s (median of 5)")
    return result


if __name__ == "__main__":
    main()
