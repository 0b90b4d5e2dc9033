"""The package's layout: imports point down the layers, no import cycles, modules and functions stay small.

Layers, bottom to top (a module may import its own layer or lower ones):

    0  the model core: rnnjax/*.py, and rnnjax/configs (a leaf: it imports nothing of rnnjax, and nothing of
       the core imports it)
    1  rnnjax/kernels and rnnjax/data: siblings, neither imports the other
    2  rnnjax/training
    3  rnnjax/analysis

experiments/, benchmarks and notebooks sit above and are not walked. Every import of an rnnjax module counts,
at module level and inside functions: ``import rnnjax.a``, ``from rnnjax.a import b`` (an edge to
``rnnjax.a.b`` when b is a submodule, else to ``rnnjax.a``) and relative imports. ``rnnjax/__init__.py``
re-exports the public API and may import anything, so it is no source of edges, and no module imports it.
Subpackage ``__init__`` files hold only their docstring, except the faces named in ``PACKAGE_FACES``.

Nothing of rnnjax is imported here: the files are parsed with ``ast``.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "rnnjax"

# Files being rewritten by another engineer: exempt from every check below (their imports are not counted, and
# their sizes are not checked) until the rewrite lands. Entries ending in "/" cover a folder. Empty it then.
PENDING_REWRITE = ()
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80  # lines of a def, its signature included and its docstring excluded

# Top-level group (``core`` for rnnjax/*.py) -> layer.
LAYERS = {"core": 0, "configs": 0, "kernels": 1, "data": 1, "training": 2, "analysis": 3}
# Subpackage __init__ files allowed to hold code, and why.
PACKAGE_FACES = {
    "rnnjax.kernels": "importing the kernels attaches them to the stock cell definitions (scan.FAST_PATHS)",
}


# ------------------------------------------------------------------------------------------ reading the tree


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    """Module name -> file, for every .py under rnnjax/."""
    return {_module_name(path): path for path in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(name: str, known: set[str]) -> str | None:
    """The longest known module that ``name`` starts with (an attribute of a module resolves to the module)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imported_modules(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The rnnjax modules that ``source`` (the text of ``module``) imports anywhere: module level or in functions.

    Args:
        source: Python source text.
        module: its dotted module name (``rnnjax.kernels`` for ``rnnjax/kernels/__init__.py``).
        is_package: the source is a package's ``__init__.py`` (relative imports start from the package itself).
        known: every module name of the package.

    Returns:
        The imported module names, without ``module`` itself.
    """
    package = module if is_package else module.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets |= {_resolve(alias.name, known) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in known else _resolve(base, known))
    return {t for t in targets if t is not None and t != module}


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _pending(path: Path) -> bool:
    rel = _relative(path)
    return any(rel.startswith(entry) if entry.endswith("/") else rel == entry for entry in PENDING_REWRITE)


def _edges() -> set[tuple[str, str]]:
    """(importer, imported) for every module but the package face and the files pending a rewrite."""
    modules = _modules()
    known = set(modules)
    edges = set()
    for module, path in modules.items():
        if module == PACKAGE or _pending(path):
            continue
        for target in imported_modules(path.read_text(), module, _is_package(path), known):
            edges.add((module, target))
    return edges


# ------------------------------------------------------------------------------------------------ the checks


def group(module: str) -> str:
    """The layer group of a module: its subpackage under rnnjax, or ``core`` for a top-level module."""
    parts = module.split(".")
    if len(parts) == 1:
        return PACKAGE
    if len(parts) == 2 and parts[1] not in LAYERS:
        return "core"
    return parts[1]


def layer_violations(edges: set[tuple[str, str]]) -> list[str]:
    """The edges that do not point down: to a higher layer, to a sibling group of the same layer, to the package
    face ``rnnjax`` (import the defining module instead), or from or to a group missing from ``LAYERS``."""
    bad = []
    for source, target in sorted(edges):
        src, dst = group(source), group(target)
        if PACKAGE in (src, dst):
            bad.append(f"{source} -> {target}: import the defining module, not the package face rnnjax")
        elif src not in LAYERS or dst not in LAYERS:
            bad.append(f"{source} -> {target}: group {src if src not in LAYERS else dst!r} has no layer in LAYERS")
        elif src != dst and LAYERS[dst] >= LAYERS[src]:
            bad.append(f"{source} ({src}, layer {LAYERS[src]}) -> {target} ({dst}, layer {LAYERS[dst]})")
    return bad


def import_cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The import cycles: strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, list[str]] = {}
    for source, target in sorted(edges):
        graph.setdefault(source, []).append(target)
        graph.setdefault(target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:  # recursion depth is bounded by the number of modules (a few dozen)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return sorted(cycles)


def function_lengths(source: str) -> list[tuple[int, str, int]]:
    """(length, name, line) of every function and method, nested ones included; the length counts the def line
    to the end of the body, without decorators and without the docstring."""
    lengths = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                n -= first.end_lineno - first.lineno + 1
            lengths.append((n, node.name, node.lineno))
    return lengths


# ------------------------------------------------------------------------------------------------- the tests


def test_imports_point_down_the_layers():
    bad = layer_violations(_edges())
    assert not bad, "imports that point up or sideways (see this file's docstring for the layers):\n" + "\n".join(bad)


def test_no_import_cycles():
    cycles = import_cycles(_edges())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_subpackage_inits_hold_only_their_docstring():
    bad = []
    for module, path in _modules().items():
        if _is_package(path) and module != PACKAGE and module not in PACKAGE_FACES and not _pending(path):
            body = ast.parse(path.read_text()).body
            if body and not (len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
                bad.append(_relative(path))
    assert not bad, f"subpackage __init__ files with code (move it into a module, or list it in PACKAGE_FACES): {bad}"


def test_modules_are_small():
    long = [
        f"{_relative(path)}: {n} lines"
        for path in _modules().values()
        if not _pending(path) and (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them along their concerns):\n" + "\n".join(long)


def test_functions_are_small():
    long = [
        f"{_relative(path)}:{line} {name}: {n} lines"
        for path in _modules().values()
        if not _pending(path)
        for n, name, line in function_lengths(path.read_text())
        if n > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines without the docstring:\n" + "\n".join(long)


def test_pending_rewrite_entries_exist():
    missing = [entry for entry in PENDING_REWRITE if not (ROOT / entry).exists()]
    assert not missing, f"PENDING_REWRITE names paths that no longer exist: {missing}"


# ------------------------------------------------------------------------------------- the checks can fail


def test_the_checks_catch_synthetic_violations():
    known = {"rnnjax", "rnnjax.scan", "rnnjax.cells", "rnnjax.kernels", "rnnjax.kernels.fused", "rnnjax.data",
             "rnnjax.data.text", "rnnjax.training.train", "rnnjax.analysis.plots"}
    source = (
        "import rnnjax.cells\n"
        "from rnnjax.kernels import fused\n"  # a submodule: the edge goes to it, not to the package
        "from rnnjax.data.text import tokenize\n"  # a name: the edge goes to its module
        "def late():\n"
        "    from rnnjax.training import train\n"  # inside a function: counted too
        "    from . import cells\n"
    )
    imported = imported_modules(source, "rnnjax.scan", False, known)
    assert imported == {"rnnjax.cells", "rnnjax.kernels.fused", "rnnjax.data.text", "rnnjax.training.train"}
    assert imported_modules("from . import fused\n", "rnnjax.kernels", True, known) == {"rnnjax.kernels.fused"}

    assert layer_violations({("rnnjax.kernels.fused", "rnnjax.scan"), ("rnnjax.training.train", "rnnjax.data.text")}) == []
    bad = layer_violations(
        {
            ("rnnjax.scan", "rnnjax.kernels.fused"),  # core -> kernels: up
            ("rnnjax.kernels.fused", "rnnjax.data.text"),  # siblings
            ("rnnjax.training.train", "rnnjax.analysis.plots"),  # up
            ("rnnjax.cells", "rnnjax"),  # the package face
            ("rnnjax.configs.default", "rnnjax.cells"),  # configs is a leaf
            ("rnnjax.newpkg.thing", "rnnjax.cells"),  # a group without a layer
        }
    )
    assert len(bad) == 6, bad
    assert any(line.startswith("rnnjax.scan (core, layer 0) -> rnnjax.kernels.fused") for line in bad), bad

    assert import_cycles({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == [["a", "b", "c"]]
    assert import_cycles({("a", "b"), ("b", "c")}) == []

    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    assert function_lengths(f'def f():\n    """Doc.\n\n    More.\n    """\n{body}\n') == [(82, "f", 1)]
