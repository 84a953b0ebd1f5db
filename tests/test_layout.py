"""The folder tree is the architecture: every import in `renders` runs downward through its layers.

From the top: what surrounds the service (admin, health and metrics views,
warm-up, URLs, management commands), the HTTP face (`renders.api`), the
life of a render (`renders.lifecycle`), webhooks (`renders.webhooks`: a
render's life may end in one; they need nothing of renders but the models
and metrics), plans and their operations (`renders.plans`), the media engine
(`renders.media`), and what every layer uses (`renders.errors`,
`renders.models`, `renders.metrics`, and `renders.representation`: a job as
its client sees it, told by the HTTP face and by a job's webhook). A module
may import its own layer or any layer below it, never one above; no two
modules import each other, even through others or inside a function.
"""

import ast
from pathlib import Path

import renders

LAYERS = ["surroundings", "api", "lifecycle", "webhooks", "plans", "media", "base"]
PACKAGE = Path(renders.__file__).parent
BASE = {"errors", "models", "metrics", "representation", "apps", "migrations"}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "renders":
        return None
    if len(parts) == 1 or parts[1] in BASE:
        return "base"
    return parts[1] if parts[1] in LAYERS else "surroundings"


def imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                raise AssertionError(f"{path}: a relative import (use renders.<layer>...)")
            if node.module == "renders":
                yield from (f"renders.{alias.name}" for alias in node.names)
            else:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        if "migrations" not in relative.parts:
            yield ".".join(relative.parts).removesuffix(".__init__"), path


def test_imports_run_only_downward():
    upward = []
    for module, path in modules():
        mine = LAYERS.index(layer_of(module))
        for imported in imports(path):
            theirs = layer_of(imported)
            if theirs is not None and LAYERS.index(theirs) < mine:
                upward.append(f"{module} ({LAYERS[mine]}) imports {imported} ({theirs})")
    assert upward == []


def test_every_module_is_in_a_layer_package_or_named_at_the_root():
    at_root = {path.stem for path in PACKAGE.glob("*.py")}
    assert at_root == {"__init__", "admin", "apps", "errors", "health", "metrics", "models", "representation", "urls",
                       "warmup"}
    for package in ("api", "lifecycle", "webhooks", "plans", "media"):
        assert (PACKAGE / package / "__init__.py").is_file()


def test_only_the_runner_starts_processes():
    starters = sorted(module for module, path in modules() if "subprocess" in set(imports(path)))
    assert starters == ["renders.media.ffmpeg"]


def test_webhooks_need_only_the_models_and_metrics():
    """Webhooks are a corner of their own: no HTTP face, no render internals, no FFmpeg."""
    used = {imported for module, path in modules() if layer_of(module) == "webhooks"
            for imported in imports(path) if layer_of(imported) not in (None, "webhooks")}
    assert used <= {"renders.models", "renders.metrics"}, used


def own_imports(module: str, path: Path) -> set[str]:
    """The modules of `renders` that `module` imports anywhere in it (a function's body included), each
    `from package import name` resolved to the submodule `name` where there is one."""
    names = {name for name, _path in modules()}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("renders"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in names else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("renders")}
    return (found & names) - {module}


def test_no_import_cycles():
    graph = {module: own_imports(module, path) for module, path in modules()}
    cycles = []

    def visit(module, trail):
        if module in trail:
            cycles.append(" -> ".join([*trail[trail.index(module):], module]))
            return
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, [*trail, module])
        done.add(module)

    done = set()
    for module in sorted(graph):
        visit(module, [])
    assert cycles == []


def test_no_thread_local_state_carries_data_between_modules():
    """Values go through calls (a job's worker id and its abandon flag are arguments of `run`), never through
    a thread-local that one module fills in for another to read."""
    users = sorted(module for module, path in modules() if "threading.local" in path.read_text(encoding="utf-8"))
    assert users == []


def imported_test_modules(path: Path):
    """The test modules `path` imports, in any spelling (absolute, relative, `from package import test_x`)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.split(".")[-1].startswith("test_"))
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if module.split(".")[-1].startswith("test_"):
                yield module
            yield from (f"{module}.{alias.name}" for alias in node.names if alias.name.startswith("test_"))


def test_no_test_module_imports_another():
    """Tests share fixtures through conftest.py and helpers through helper modules (tests/media.py,
    tests/server.py, tests/jobclient.py, ...), never by importing another test module: a test file can be
    moved, renamed or deleted without breaking a stranger. Helper modules and conftest.py files import none."""
    tests = Path(__file__).resolve().parent
    found = [f"{path.relative_to(tests)} imports {name}" for path in sorted(tests.rglob("*.py"))
             for name in imported_test_modules(path)]
    assert found == [], found


def test_helpers_define_nothing_pytest_would_collect():
    """A helper named test_* runs as a test in every module that imports it."""
    tests = Path(__file__).resolve().parent
    found = []
    for path in sorted(tests.rglob("*.py")):
        if path.name.startswith("test_"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
                found.append(f"{path.relative_to(tests)}: {node.name}")
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                found.append(f"{path.relative_to(tests)}: class {node.name}")
    assert found == [], found
