"""Imports run one way: the Luigi tasks and the console scripts are on top, nothing imports
them, and no module imports itself through others (an import circle). Read from the source
with ast, function-level imports included, so a late import cannot hide a circle."""
import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "pipeline"
# Top: the Luigi tasks, and the console scripts of pyproject.toml's [project.scripts].
TOP = {"pipeline.tasks", "pipeline.cron", "pipeline.client", "pipeline.versions",
       "pipeline.smoke_test"}


def _imports() -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports."""
    modules = {f"pipeline.{path.stem}": path for path in PACKAGE.glob("*.py")
               if path.stem != "__init__"}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "pipeline":
                    found |= {f"pipeline.{alias.name}" for alias in node.names}
                elif node.module.startswith("pipeline."):
                    found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names
                          if alias.name.startswith("pipeline.")}
        graph[name] = found & set(modules)
    return graph


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


def test_the_package_has_no_import_circle():
    circle = _circle(_imports())
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_nothing_imports_the_tasks_or_a_console_script():
    upward = sorted((module, imported) for module, imports in _imports().items()
                    for imported in imports if imported in TOP)
    assert upward == [], "upward imports (module -> task or console module): " + ", ".join(
        f"{module} -> {imported}" for module, imported in upward)


def test_the_checks_see_a_circle_and_an_upward_import():
    """The two checks above fail when they should (on a made-up graph)."""
    graph = {"pipeline.a": {"pipeline.b"}, "pipeline.b": {"pipeline.c"},
             "pipeline.c": {"pipeline.a"}, "pipeline.d": set()}
    assert _circle(graph) == ["pipeline.a", "pipeline.b", "pipeline.c", "pipeline.a"]
    assert _circle({"pipeline.a": {"pipeline.b"}, "pipeline.b": set()}) is None
    real = _imports()
    assert "pipeline.settings" in real["pipeline.versions"]
    assert "pipeline.export" in real["pipeline.exported_model"]
