"""The package's layering: its import graph (every import statement, those inside functions too) has no cycle,
and no library module imports a command-line module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "nbm_lightning"
CLI_PLUMBING = {f"{PACKAGE}.cli"}  # argument parsing and exit codes: command-line code without a __main__ guard


def module_name(path: Path, root: Path) -> str:
    """The dotted name of a source file under `root` (a package's __init__.py is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a `from X import ...` statement reads from."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported(path: Path, module: str, modules: set[str]) -> set[str]:
    """The package's modules that one file imports, anywhere in it (functions included)."""
    tree, found = ast.parse(path.read_text()), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, path.name == "__init__.py")
            found |= {f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names}
    return {name for name in found if name in modules and name != module}


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports."""
    files = {module_name(path, root): path for path in (root / PACKAGE).rglob("*.py")}
    return {name: imported(path, name, set(files)) for name, path in files.items()}


def cli_modules(root: Path) -> set[str]:
    """Command-line modules: `__main__` modules, modules with a `__main__` guard, and the CLI plumbing."""
    names = set(CLI_PLUMBING)
    for path in (root / PACKAGE).rglob("*.py"):
        if path.name == "__main__.py" or 'if __name__ == "__main__"' in path.read_text():
            names.add(module_name(path, root))
    return names


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    return next((c for n in sorted(graph) if n not in state and (c := visit(n, [n]))), None)


def layer_violations(root: Path) -> list[str]:
    """'library -> cli' for every library module that imports a command-line module."""
    graph, cli = import_graph(root), cli_modules(root)
    return sorted(f"{lib} -> {dep}" for lib, deps in graph.items() if lib not in cli for dep in deps & cli)


def test_the_graph_sees_imports_inside_functions(tmp_path):
    pkg = tmp_path / PACKAGE
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "b.py").write_text("from .a import f\n")
    (pkg / "c.py").write_text("import sys\nfrom .cli import x\n")
    (pkg / "cli.py").write_text("")
    (pkg / "tool.py").write_text('from .a import f\nif __name__ == "__main__":\n    f()\n')
    graph = import_graph(tmp_path)
    assert graph[f"{PACKAGE}.a"] == {f"{PACKAGE}.b"} and graph[f"{PACKAGE}.b"] == {f"{PACKAGE}.a"}
    assert find_cycle(graph) in ([f"{PACKAGE}.a", f"{PACKAGE}.b", f"{PACKAGE}.a"],)
    assert cli_modules(tmp_path) == {f"{PACKAGE}.cli", f"{PACKAGE}.tool"}
    assert layer_violations(tmp_path) == [f"{PACKAGE}.c -> {PACKAGE}.cli"]


def test_no_import_cycles():
    graph = import_graph(ROOT)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    assert len(graph) > 20 and f"{PACKAGE}.fit" in graph


def test_no_library_module_imports_a_command_line_module():
    assert layer_violations(ROOT) == []
    assert {f"{PACKAGE}.fit", f"{PACKAGE}.sweep", f"{PACKAGE}.arch.__main__", f"{PACKAGE}.cli"} <= cli_modules(ROOT)


def test_error_types_and_checks_import_nothing_of_ours():
    graph = import_graph(ROOT)
    assert graph[f"{PACKAGE}.core.errors"] == set() and graph[f"{PACKAGE}.core.validate"] == set()


# --- issue 18: the role packages' layers -----------------------------------------------------------------------------
LAYERS = {  # role package -> the packages of ours its library modules may import (command-line modules excepted)
    "core": set(),
    "arch": {"core"},
    "records": {"core", "arch"},
    "training": {"core", "arch", "records"},
    "runner": {"core", "arch", "records", "training"},
    "synthetic": {"core", "arch", "records"},
    "hwcost": {"core", "arch", "records"},  # below bench and search: their queries join cost files
    "bench": {"core", "arch", "records", "hwcost"},  # the reader owns the file formats (bench.published, .extended)
    "export": {"core", "arch", "records", "bench"},  # writes through bench's formats
    "zerocost": {"core", "arch", "records", "training", "hwcost", "bench"},  # proxies of networks, vs the benchmark
    "search": {"core", "arch", "records", "bench", "hwcost", "zerocost"},  # zerocost: its proxies file, ranked by
}
TORCH = ("torch", "torchvision", "pytorch_lightning", "torchmetrics", "ptflops")
NO_TORCH = ("core", "arch.codes", "arch.picture", "records", "bench", "search", "export",
            "hwcost.costfile", "hwcost.query", "hwcost.report", "zerocost.proxyfile", "zerocost.report",
            "core.session")  # the tabular side  # fmt: skip


def package_of(module: str, root: Path) -> str:
    """The role package of a module: nbm_lightning.a.b -> a; "" for the top level and its modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (root / PACKAGE / parts[1]).is_dir()) else ""


def layer_breaches(root: Path) -> list[str]:
    """'a -> b' for every library module of a role package that imports a package its layer does not allow."""
    graph, cli = import_graph(root), cli_modules(root)
    out = []
    for lib, deps in graph.items():
        pkg = package_of(lib, root)
        if lib in cli or pkg not in LAYERS:
            continue
        allowed = LAYERS[pkg] | {pkg}
        out += [f"{lib} -> {dep}" for dep in deps if dep != PACKAGE and package_of(dep, root) not in allowed]
    return sorted(out)


def _executed_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """The import statements that run when a module is imported: not those in functions or under TYPE_CHECKING."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def loaded_at_import(root: Path) -> dict[str, set[str]]:
    """Module -> what importing it loads directly: modules of ours (parent packages included), third-party names."""
    files = {module_name(p, root): p for p in (root / PACKAGE).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        found = set()
        for node in _executed_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            else:
                src = _absolute(node, name, path.name == "__init__.py")
                found |= {src} | {f"{src}.{a.name}" for a in node.names if f"{src}.{a.name}" in files}
        parts = name.split(".")
        graph[name] = (found | {".".join(parts[:k]) for k in range(1, len(parts))}) - {name}
    return graph


def torch_at_import(root: Path, module: str, graph: dict[str, set[str]] | None = None) -> list[str]:
    """The chain of imports by which importing `module` loads torch (or Lightning, ...), or []."""
    graph = graph or loaded_at_import(root)
    seen, stack = {module}, [[module]]
    while stack:
        chain = stack.pop()
        for dep in sorted(graph.get(chain[-1], ())):
            if dep.split(".")[0] in TORCH:
                return chain + [dep]
            if dep in graph and dep not in seen:
                seen.add(dep)
                stack.append(chain + [dep])
    return []


def test_role_packages_import_only_lower_layers():
    assert layer_breaches(ROOT) == []
    assert set(LAYERS) <= {p.name for p in (ROOT / PACKAGE).iterdir() if (p / "__init__.py").is_file()}


def test_layer_check_sees_a_breach(tmp_path):
    pkg = tmp_path / PACKAGE
    for sub in ("core", "arch"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("from ..arch import b\n")
    (pkg / "arch" / "b.py").write_text("from ..core import c\n")
    (pkg / "core" / "c.py").write_text("")
    assert layer_breaches(tmp_path) == [f"{PACKAGE}.core.a -> {PACKAGE}.arch.b"]


def test_the_tabular_side_loads_no_torch():
    files = {module_name(p, ROOT) for p in (ROOT / PACKAGE).rglob("*.py")}
    tabular = sorted(m for m in files for t in NO_TORCH if m == f"{PACKAGE}.{t}" or m.startswith(f"{PACKAGE}.{t}."))
    assert len(tabular) > 25
    graph = loaded_at_import(ROOT)
    assert {m: chain for m in tabular if (chain := torch_at_import(ROOT, m, graph))} == {}
    assert torch_at_import(ROOT, f"{PACKAGE}.arch.network", graph)[-1] == "torch"  # it sees torch where it is


def test_modules_per_folder_stay_few():
    folders = [ROOT / PACKAGE, *(p for p in (ROOT / PACKAGE).iterdir() if (p / "__init__.py").is_file())]
    counts = {f.name: len(list(f.glob("*.py"))) for f in folders}
    assert counts[PACKAGE] <= 10 and max(counts.values()) <= 12, counts
