"""The layout the README's "How it works" promises: one `seqsched.<folder>` namespace, floors
that only look down, no import cycle between files, no source file past 400 lines.

Every import counts, the lazy ones inside functions and those under TYPE_CHECKING too: a lazy
upward import is still an upward dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder -> floor; a file may import its own floor and the floors below it
FLOORS = {"common": 0, "traces": 1, "sim": 2, "policies": 3, "predictors": 3, "backends": 3,
          "analysis": 4, "app": 5}
OLD_NAMES = set(FLOORS) | {"seqsched"}
MAX_LINES = 400


def source_files() -> list[Path]:
    return sorted(p for folder in FLOORS for p in (ROOT / folder).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["seqsched", *parts])


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in the file, relative ones resolved."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            # `from seqsched.x import y` may name a submodule y: count both
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return found


def floor_of(module: str) -> int | None:
    parts = module.split(".")
    return FLOORS.get(parts[1]) if parts[0] == "seqsched" and len(parts) > 1 else None


def resolve(module: str, known: set[str]) -> str | None:
    """The project file a module name refers to (None for third-party and attributes)."""
    while module and module not in known:
        module = module.rpartition(".")[0]
    return module or None


def test_every_import_uses_the_seqsched_namespace():
    bare = [f"{p.relative_to(ROOT)}:{line} imports {m}" for p in source_files()
            for line, m in imported_modules(p) if m.split(".")[0] in OLD_NAMES - {"seqsched"}]
    tests = [f"{p.relative_to(ROOT)}:{line} imports {m}"
             for p in sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))
             for line, m in imported_modules(p) if m.split(".")[0] in OLD_NAMES - {"seqsched"}
             and not (ROOT / "tests" / m.split(".")[0]).exists()]
    assert not bare + tests, "imports outside the seqsched namespace:\n" + "\n".join(bare + tests)


def test_floors_only_look_down():
    upward = []
    for p in source_files():
        mine = floor_of(module_name(p))
        for line, m in imported_modules(p):
            theirs = floor_of(m)
            if theirs is not None and theirs > mine:
                upward.append(f"{p.relative_to(ROOT)}:{line} (floor {mine}) imports {m} "
                              f"(floor {theirs})")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycle_between_files():
    files = {module_name(p): p for p in source_files()}
    known = set(files)
    graph = {m: sorted({r for _, i in imported_modules(p)
                        if (r := resolve(i, known)) and r != m
                        # a package's __init__ is imported with any submodule: not an edge
                        and not m.startswith(r + ".")})
             for m, p in files.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in graph[m]:
            if state.get(n) == 1:
                cycles.append(" -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("folder", [*FLOORS, "tests", "benchmarks", "scripts"])
def test_no_source_file_past_400_lines(folder):
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / folder).rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_the_namespace_claims_no_generic_top_level_name():
    """pyproject maps each folder to seqsched.<folder>; nothing installs as `sim`, `analysis`..."""
    import tomllib
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert all(p.startswith("seqsched.") for p in tool["packages"])
    assert tool["package-dir"] == {f"seqsched.{f}": f for f in FLOORS}
    on_disk = {module_name(p.parent) for p in source_files() if p.name == "__init__.py"}
    assert on_disk == set(tool["packages"]), "a package folder is missing from pyproject"
