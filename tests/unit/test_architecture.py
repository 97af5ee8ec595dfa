"""The function's package keeps the shape docs/architecture.md describes: its layers in its folders, arrows one way.

Read from the source (every import statement, those for type hints too), so a new module or import that breaks
the shape fails here, naming it, before a reviewer has to find it.
"""

import ast
from collections.abc import Iterator
from functools import cache

import pytest

from tests.paths import ROOT

PACKAGE = ROOT / "functions" / "voice_access"

# What each layer may import from the package besides itself. The two entry points (the edge: API Gateway's
# function; supervision: the supervisor's) speak to everything below them; the use cases (the domain's entry points:
# what a route or the supervisor calls) to the domain's model, the outside parties and the configuration the entry
# point reads for them; the rest of the domain to its own model and the outside parties; the configuration reads
# files and the environment into the domain's records; the outside parties know only the domain's errors. Nothing
# imports an entry point, and each use case is imported by its own entry point only.
USE_CASES_OF = {
    "edge": {"domain.minting", "domain.profiles", "domain.live", "domain.calls", "domain.usage"},
    "supervision": {"domain.supervising"},
}
USE_CASES = set().union(*USE_CASES_OF.values())
# What only one function loads: its entry point, its use cases and its own settings and clients. The other function
# imports none of it, even through another module (the minting function's cold start never pays for a WebSocket
# client, nor the supervisor for the routes).
OWN = {
    "edge": {"edge", *USE_CASES_OF["edge"], "config.mint_settings"},
    "supervision": {
        "supervision",
        *USE_CASES_OF["supervision"],
        "domain.call_order",
        "domain.sideband_events",
        "domain.supervisor_parties",
        "config.supervisor_settings",
        "clients.sideband",
    },
}
LAYERS = {
    "edge": {"edge", "domain", "clients", "config", "observability"},
    "supervision": {"supervision", "domain", "clients", "config", "observability"},
    "use case": {"domain", "clients", "config", "observability"},
    "domain": {"domain", "clients", "observability"},
    "config": {"domain", "config", "observability"},
    "clients": {"domain.errors", "clients", "observability"},
    "observability": set(),
}


@cache
def imports() -> dict[str, set[str]]:
    """Each module of the package (dotted, without the package's name) and the package's modules it imports, or its
    folders (``from voice_access import edge`` imports the folder ``edge``)."""
    modules = {
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts): path
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py"
    }
    known = set(modules) | {".".join(path.parent.relative_to(PACKAGE).parts) for path in PACKAGE.rglob("*/__init__.py")}
    return {
        name: {
            imported
            for node in ast.walk(ast.parse(path.read_text()))
            for imported in _imported(node, known)
            if imported != name
        }
        for name, path in modules.items()
    }


def _imported(node: ast.AST, known: set[str]) -> Iterator[str]:
    """What of ``known`` (the package's modules and folders) an import statement names."""
    if isinstance(node, ast.Import):
        names = [alias.name.removeprefix("voice_access.") for alias in node.names]
        yield from (name for name in names if name in known)
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("voice_access"):
        module = node.module.removeprefix("voice_access").removeprefix(".")
        for alias in node.names:
            name = f"{module}.{alias.name}" if module else alias.name
            if name in known:  # from voice_access.domain import quota: the module quota
                yield name
            elif module in known:  # from voice_access.domain.quota import reserve: the module it is in
                yield module


def _layer(module: str) -> str:
    return "use case" if module in USE_CASES else module.split(".")[0]


def test_the_package_has_its_layers_as_folders() -> None:
    assert {_layer(module) for module in imports()} == set(LAYERS)
    assert set(imports()) >= USE_CASES


@pytest.mark.parametrize("module", sorted(imports()))
def test_no_module_imports_more_than_half_of_the_package(module: str) -> None:
    others = len(imports()) - 1
    assert len(imports()[module]) <= others / 2, sorted(imports()[module])


@pytest.mark.parametrize("module", sorted(imports()))
def test_imports_go_one_way(module: str) -> None:
    allowed = LAYERS[_layer(module)]
    wrong = sorted(
        imported
        for imported in imports()[module]
        if not any(imported == layer or imported.startswith(f"{layer}.") for layer in allowed)
        or (imported in USE_CASES and imported not in USE_CASES_OF.get(_layer(module), set()))
    )
    assert not wrong, f"{module} imports {wrong}: see docs/architecture.md for where it belongs"


def test_the_domain_knows_no_http_and_no_api_gateway() -> None:
    for path in (PACKAGE / "domain").rglob("*.py"):
        source = path.read_text()
        assert "HTTPStatus" not in source, path
        assert "requestContext" not in source, path


def test_there_is_no_import_cycle() -> None:
    graph = imports()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for imported in graph.get(module, set()):  # a folder imported as such is not followed
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())


def _loaded(module: str) -> set[str]:
    """The package's modules (and folders) that importing ``module`` loads, itself included."""
    seen: set[str] = set()
    waiting = [module]
    while waiting:
        name = waiting.pop()
        if name not in seen:
            seen.add(name)
            waiting.extend(imports().get(name, set()))
    return seen


def _owned(name: str, entry_point: str) -> bool:
    return any(name == own or name.startswith(f"{own}.") for own in OWN[entry_point])


@pytest.mark.parametrize(("entry_point", "other"), [("edge", "supervision"), ("supervision", "edge")])
def test_a_function_loads_nothing_of_the_other(entry_point: str, other: str) -> None:
    for module in (module for module in imports() if _layer(module) == entry_point):
        loaded = sorted(name for name in _loaded(module) if _owned(name, other))
        assert not loaded, f"{module} loads {loaded}, which only the {other} function needs"


def test_only_the_sideband_client_imports_websockets() -> None:
    importing = sorted(
        {
            ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
            for path in PACKAGE.rglob("*.py")
            for node in ast.walk(ast.parse(path.read_text()))
            if (isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "websockets" for alias in node.names))
            or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "websockets")
        }
    )
    assert importing == ["clients.sideband"]
