"""Imports run one way: each package of ``pipeline`` imports only the packages below it, the
Luigi tasks and the console scripts are on top and nothing imports them, and no module
imports itself through others (an import circle). Read from the source with ast,
function-level imports included, so a late import cannot hide an upward import."""
import ast

from conftest import REPO

PACKAGE = REPO / "pipeline"
# Bottom to top: a module may import its own package and the packages before it. The
# top-level helpers (settings, atomic_output) are "pipeline"; the two tops, tasks and
# cli, may not import each other.
LAYERS = ["pipeline", "pipeline.data", "pipeline.model", "pipeline.monitoring",
          "pipeline.serving", "pipeline.scoring", "pipeline.tasks", "pipeline.cli"]
TOPS = {"pipeline.tasks", "pipeline.cli"}
MAX_LINES = 400
MAX_TASK_MODULE_LINES = 300


def _module_name(path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("pipeline"):
                    # "from pipeline.data import corpus": the module pipeline.data.corpus
                    found |= {f"{node.module}.{alias.name}" for alias in node.names
                              if f"{node.module}.{alias.name}" in modules}
                    found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names
                          if alias.name.startswith("pipeline.")}
        graph[name] = (found & set(modules)) - {name}
    return graph


def _layer(module: str) -> str:
    """The package of LAYERS that ``module`` belongs to."""
    return max((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")),
               key=len)


def _upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where a module imports a package above its own, or one
    of the two tops imports the other. A package's ``__init__`` may gather its modules."""
    wrong = []
    for module, imports in graph.items():
        own = _layer(module)
        for imported in imports:
            other = _layer(imported)
            if other == own or imported == "pipeline":
                continue
            if LAYERS.index(other) > LAYERS.index(own) or {own, other} == TOPS:
                wrong.append((module, imported))
    return sorted(wrong)


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as the modules along it, or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                return path[path.index(imported):] + [imported]
            if imported not in state and (found := visit(imported)):
                return found
        state[module] = "done"
        path.pop()
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def _without_package_inits(graph):
    """A package's ``__init__`` importing its own modules (pipeline.tasks gathers the
    tasks for ``luigi --module pipeline.tasks``) is not a circle: the edges from a module to
    its own package are left out."""
    return {module: {i for i in imports if not module.startswith(i + ".")}
            for module, imports in graph.items()}


def test_the_package_has_no_import_circle():
    circle = _circle(_without_package_inits(_imports()))
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_every_import_runs_down_the_layers():
    wrong = _upward(_imports())
    assert wrong == [], "upward imports (module -> module of a package above it): " + ", ".join(
        f"{module} -> {imported}" for module, imported in wrong)


def test_every_module_belongs_to_a_layer_and_says_what_its_package_holds():
    for path in PACKAGE.rglob("__init__.py"):
        package = _module_name(path)
        assert package in LAYERS, f"{package} is not in tests/test_imports.py's LAYERS"
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path} has no docstring"


def test_no_module_is_over_400_lines_and_no_task_module_over_300():
    for path in PACKAGE.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        limit = MAX_TASK_MODULE_LINES if "tasks" in path.parts else MAX_LINES
        assert lines <= limit, f"{path.relative_to(REPO)} has {lines} lines (at most {limit})"


def test_the_checks_see_a_circle_and_an_upward_import():
    """The checks above fail when they should (on made-up graphs), and read the real one."""
    graph = {"pipeline.a": {"pipeline.b"}, "pipeline.b": {"pipeline.c"},
             "pipeline.c": {"pipeline.a"}, "pipeline.d": set()}
    assert _circle(graph) == ["pipeline.a", "pipeline.b", "pipeline.c", "pipeline.a"]
    assert _circle({"pipeline.a": {"pipeline.b"}, "pipeline.b": set()}) is None
    assert _upward({"pipeline.data.corpus": {"pipeline.model.network"},
                    "pipeline.model.network": {"pipeline.data.text"},
                    "pipeline.cli.versions": {"pipeline.tasks.data"},
                    "pipeline.tasks.data": {"pipeline.cli.cron"}}) == [
        ("pipeline.cli.versions", "pipeline.tasks.data"),
        ("pipeline.data.corpus", "pipeline.model.network"),
        ("pipeline.tasks.data", "pipeline.cli.cron")]
    real = _imports()
    assert "pipeline.settings" in real["pipeline.cli.versions"]
    assert "pipeline.serving.export" in real["pipeline.serving.exported_model"]
    assert "pipeline.data.text" in real["pipeline.monitoring.drift"]  # a late import
