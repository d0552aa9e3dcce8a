"""The package's layers, read from its source (AST: no import runs): every package imports only from the packages
below it, at any level of a module (function-level and type-only imports included), and no two modules import
each other, directly or around a cycle. And the parts that must start instantly import neither torch nor Ray."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "raytune_llm"

# Bottom first; a package may import its own modules and those of the packages in earlier rows (README "Layout").
LAYERS = [
    ("core",),
    ("searchers", "schedulers"),  # config models the schema's search section is built from
    ("schema",),
    ("recipes",),  # the recipe library: data checked against the schema
    ("sources",),
    ("tasks",),
    ("models",),
    ("training",),
    ("runs",),
    ("results",),
    ("compression",),  # variants of an exported model; training them is the search layer's (search.compress)
    ("actors",),
    ("executors", "tracking"),
    ("config",),  # asks every plug-in package above the schema to check an experiment
    ("search",),
    ("report",),
    ("cli",),
]
ROOT_MODULES = {"__init__", "__main__"}  # raytune_llm itself (the version; below everything) and `python -m`


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> set[str]:
    """The package's modules that `path` imports anywhere in it: `from a.b import c` names a.b.c when c is a module,
    else a.b (its __init__)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def is_module(dotted: str) -> bool:
        rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
        return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == root.name}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            if base.split(".")[0] != root.name:
                continue
            subs = [f"{base}.{a.name}" for a in node.names if is_module(f"{base}.{a.name}")]
            found |= set(subs) if len(subs) == len(node.names) else {base, *subs}
    return found - {name}


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    return {module_name(p, root): imports_of(p, root) for p in sorted(root.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The row of LAYERS a module's package is in; -1 for the root package's own modules."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ROOT_MODULES:
        return len(LAYERS) if parts[-1] == "__main__" else -1
    return next(i for i, row in enumerate(LAYERS) if parts[1] in row)


def upward(imports: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, deps in imports.items():
        package = module.split(".")[1] if "." in module else ""
        for dep in sorted(deps):
            same = "." in dep and dep.split(".")[1] == package
            if not same and layer_of(dep) >= layer_of(module):
                bad.append(f"{module} imports {dep}")
    return bad


def cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in imports.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(imports):
        if v not in index:
            visit(v)
    return found


def test_every_module_is_in_a_layer_and_the_root_holds_no_modules() -> None:
    rows = {p for row in LAYERS for p in row}
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages == rows, f"packages without a layer: {packages - rows}; layers without a package: {rows - packages}"
    assert {p.stem for p in ROOT.glob("*.py")} == ROOT_MODULES


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    assert upward(graph()) == []


def test_no_import_cycle_type_only_imports_included() -> None:
    assert cycles(graph()) == []


def test_the_checks_catch_an_injected_upward_import_and_cycle(tmp_path: Path) -> None:
    copy = tmp_path / "raytune_llm"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    space = copy / "schema" / "space.py"  # a type-only import of the driver into the schema
    injected = "if TYPE_CHECKING:\n    from raytune_llm.search.driver import connect\n"
    space.write_text(space.read_text().replace("if TYPE_CHECKING:\n", injected, 1))
    imports = graph(copy)
    assert upward(imports) == ["raytune_llm.schema.space imports raytune_llm.search.driver"]
    assert any({"raytune_llm.schema.space", "raytune_llm.search.driver"} <= set(c) for c in cycles(imports))


HEAVY = ("torch", "ray", "transformers", "datasets", "peft")


def loaded_after(code: str) -> list[str]:
    """The heavy libraries a fresh interpreter has imported after running `code`."""
    probe = f"import sys\n{code}\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", ["core", "schema", "config", "results", "report", "cli"])
def test_the_light_packages_import_neither_torch_nor_ray(package: str) -> None:
    modules = sorted(module_name(p, ROOT) for p in (ROOT / package).rglob("*.py"))
    assert loaded_after("\n".join(f"import {m}" for m in modules)) == []


def test_help_starts_without_torch_or_ray() -> None:
    code = ("from raytune_llm.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "for command in ('init', 'validate', 'search', 'status', 'report', 'export', 'robust', 'train', "
            "'resume'):\n"
            "    try:\n        main([command, '--help'])\n    except SystemExit:\n        pass")
    assert loaded_after(code) == []


def test_validate_starts_without_torch_or_ray() -> None:
    spaces = sorted((ROOT.parent / "search_spaces").glob("*.yaml"))
    code = "from raytune_llm.cli.main import main\n" + "\n".join(
        f"assert main(['validate', {str(p)!r}]) == 0" for p in spaces)
    assert loaded_after(code) == []
