"""The package's shape: no import cycles, no module reaching into another's private names, small modules.

Imports are read from the source with `ast`, including the ones inside functions (a deferred import is
still a dependency: a cycle through one is a cycle a reader has to untangle).

    python -m pytest tests/test_architecture.py -q
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ulmfit_multi"
MAX_LINES = {"pipeline": 600}
DEFAULT_MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def package_imports() -> dict[str, list[tuple[str, str]]]:
    """module -> [(imported module, imported name or '')] for imports within the package."""
    out: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        edges = out.setdefault(module, [])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(module, node, path.name == "__init__.py")
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").exists():
                        edges.append((sub, ""))  # `from . import module`
                    elif target.startswith("ulmfit_multi"):
                        edges.append((target, alias.name))
            elif isinstance(node, ast.Import):
                edges += [(a.name, "") for a in node.names if a.name.startswith("ulmfit_multi")]
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _graph() -> dict[str, set[str]]:
    imports = package_imports()
    # importing `a.b` runs `a/__init__.py` first; the package's own __init__ re-exports the public API
    return {m: {t for t, _ in edges if t != m and t != "ulmfit_multi"} for m, edges in imports.items()}


def test_no_import_cycles() -> None:
    assert find_cycle(_graph()) is None, f"import cycle: {' -> '.join(find_cycle(_graph()) or [])}"


def test_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_private_names_across_modules() -> None:
    crossing = [f"{m} imports {name} from {target}" for m, edges in package_imports().items()
                for target, name in edges if name.startswith("_") and not name.startswith("__") and target != m]
    assert crossing == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: _module_name(p))
def test_module_size(path: Path) -> None:
    limit = MAX_LINES.get(path.stem, DEFAULT_MAX_LINES)
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= limit, f"{path.name}: {n} lines (limit {limit}): split it along a seam"


def test_package_never_imports_bench() -> None:
    offenders = [str(p) for p in PACKAGE.rglob("*.py") if "bench/" in p.read_text(encoding="utf-8")
                 and "sys.path" in p.read_text(encoding="utf-8")]
    assert offenders == []
