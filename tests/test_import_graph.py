"""The package's imports form layers with no cycle, function-local imports included.

Every ``import``/``from ... import`` of an audiozoo module anywhere in ``src/audiozoo`` (module
level or inside a function; ``if TYPE_CHECKING:`` blocks excluded, they never run) is an edge.
The graph must be acyclic, and no module may import one of a higher layer:

    parts (frontends, backbones, heads, converters, labels, ...)  <  weights I/O  <  model  <
    factory and zoo view  <  package and CLI
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "audiozoo"

# Layer of each top-level module or subpackage of audiozoo (lower imports nothing higher).
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        [
            "_errors",
            "_checks",
            "_budget",
            "_version",
            "_discovery",
            "_registry",
            "_audio",
            "_windows",
            "names",
            "labels",
            "pretrained",
            "augment",
            "resample",
            "frontends",
            "backbones",
            "heads",
            "converters",
        ],
        0,
    ),
    **dict.fromkeys(
        [
            "integrity",
            "cache",
            "_http",
            "_hub_transfer",
            "download",
            "checkpoints",
            "format",
            "_format_config",
        ],
        1,
    ),
    **dict.fromkeys(
        [
            "model",
            "_clips",
            "_layers",
            "_freeze",
            "_inputs",
            "_outputs",
            "stats",
            "optimize",
            "finetune",
            "data",
            "events",
            "corpus",
        ],
        2,
    ),
    **dict.fromkeys(["_zoo", "_factory", "_preflight"], 3),
    **dict.fromkeys(["__init__", "cli", "__main__"], 4),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(name: str) -> bool:
    return (SRC / Path(*name.split(".")) / "__init__.py").is_file()


def exists(name: str) -> bool:
    base = SRC / Path(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> set[str]:
    """The audiozoo modules ``path`` imports (resolved, existing modules only)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "audiozoo")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "audiozoo":
                continue
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{target}.{alias.name}"
                found.add(sub if exists(sub) else target)
    return {m for m in found if exists(m) and m != here}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    return LAYERS[top]


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_module_has_a_layer():
    unknown = sorted({m.split(".")[1] for m in graph() if "." in m} - set(LAYERS))
    assert not unknown, f"add these modules to LAYERS: {unknown}"


def test_imports_point_down_the_layers():
    upward = [
        f"{src} (layer {layer(src)}) imports {dst} (layer {layer(dst)})"
        for src, targets in graph().items()
        for dst in sorted(targets)
        if layer(dst) > layer(src)
    ]
    assert not upward, "\n".join(upward)


def test_the_check_sees_function_local_imports(tmp_path):
    """The scanner must not miss an import because it sits inside a function."""
    edges = imports_of(PACKAGE / "model.py")
    assert "audiozoo.format" in edges  # imported inside AudioModel.save_pretrained
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize(
    "outside", ["docs/hooks", "docs/scripts", "benchmarks", "examples", "src/audiozoo/cli"]
)
def test_outside_code_imports_no_private_module(outside: str):
    root = SRC.parent / outside
    files = [root] if root.is_file() else sorted(root.rglob("*.py"))
    private = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
                names += [f"{names[0]}.{a.name}" for a in node.names]
            in_package = path.is_relative_to(PACKAGE)  # relative imports reach audiozoo
            private += [
                f"{path.relative_to(SRC.parent)}: {n}"
                for n in names
                if (n.startswith("audiozoo.") or (in_package and n.startswith(".")))
                and any(
                    part.startswith("_") and not part.startswith("__")
                    for part in n.lstrip(".").split(".")[1 if n.startswith("audiozoo") else 0 :]
                )
            ]
    assert not private, "\n".join(private)
