"""The shape of the package, kept by a test (issue #11): small modules and functions, imports in
one direction, and the sandbox independent of the connector. A failure says what broke it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sqquid_etl"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _imports(name: str, path: Path, nodes: list[ast.AST] | None = None) -> set[str]:
    """The package's modules that `name` imports: in `nodes`, or anywhere in its file (lazy
    imports inside functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in nodes if nodes is not None else ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    modules = _modules()
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    return {name: _imports(name, path) for name, path in _modules().items()}


def test_no_module_over_the_line_limit():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by job): {long}"


def test_no_function_over_the_line_limit():
    long = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name} ({length} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (give each part one job): {long}"


def test_no_import_cycle():
    """Module-level imports only: a lazy import inside a function is how a command defers a heavy module."""
    graph = {name: _imports(name, path, _tree(path).body) for name, path in _modules().items()}
    cycle = _find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):
                continue  # a package importing its own submodule
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


def test_imports_go_one_way():
    graph = _graph()
    assert "sqquid_etl.reconcile" not in graph["sqquid_etl.engine"], "engine must not import reconcile (the pipeline asks it)"
    fetching = [m for m in graph if m.startswith("sqquid_etl.fetch")]
    for module in fetching:
        wrong = {m for m in graph[module] if m.startswith("sqquid_etl.destinations")}
        assert not wrong, f"{module} imports destinations {wrong}: fetching knows nothing of destinations"


def test_the_sandbox_imports_nothing_from_the_connector():
    for name, imports in _graph().items():
        if name.startswith("sqquid_etl.sandbox"):
            wrong = {m for m in imports if not m.startswith("sqquid_etl.sandbox")}
            assert not wrong, f"{name} imports {wrong}: the sandbox must run without the connector"


def test_the_connector_imports_the_sandbox_only_in_its_commands():
    allowed = {"sqquid_etl.demo", "sqquid_etl.cli"}
    for name, imports in _graph().items():
        if not name.startswith("sqquid_etl.sandbox") and name not in allowed:
            wrong = {m for m in imports if m.startswith("sqquid_etl.sandbox")}
            assert not wrong, f"{name} imports the sandbox {wrong}: only the demo and sandbox commands may"


def test_no_isinstance_on_a_destination_outside_destinations():
    offenders = []
    for name, path in _modules().items():
        if name.startswith("sqquid_etl.destinations"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
                if "Destination" in ast.unparse(node.args[1]):
                    offenders.append(f"{name}:{node.lineno}")
    assert not offenders, f"isinstance on a destination class outside destinations/ (use the protocol): {offenders}"
