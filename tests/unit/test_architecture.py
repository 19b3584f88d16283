"""The import direction docs/ARCHITECTURE.md describes, held on every installed module.

Each package has a rank; a module may import a module of a lower rank, or of its own package.
The pure core (catalogue, logic, chain) imports no Kafka, Faust or HTTP library at all.
``KNOWN_DEBT`` lists the imports against the direction that the tree still has: the test fails
on any import against the direction that is not listed, and on a listed one that is gone (so
the list only shrinks, and says what is left)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the installed packages: shulian, with the top-level streams/, connectors/ and bench/ folders
# installed under it as shulian.streams, shulian.connectors and shulian.bench (symlinks in shulian/)
TOP_LEVEL = ("shulian",)
FOLDERS = {"shulian": "shulian", "streams": "shulian.streams", "connectors": "shulian.connectors",
           "bench": "shulian.bench"}
GENERIC = ("streams", "connectors", "bench")

RANK: dict[str, float] = {
    # base: what every layer may use
    "shulian": 0,  # shulian/__init__.py (the version)
    "shulian.errors": 0,
    "shulian.result": 0,  # per-record outcomes as values: Accepted | Rejected(reason, ...)
    "shulian.clock": 0,  # the injected decision clock
    "shulian.log": 0,
    "shulian.settings": 1,
    "shulian.validation": 1,  # pydantic's errors in Shulian's words (file, field, why)
    # the pure core: values, checks, harmonisation, policy, masking, audit links, stages
    "shulian.catalog": 2,
    # the wire contract: topic names (and the subjects, groups and prefixes built from them),
    # over the catalogue's values, under everything that names a topic (views name subjects)
    "shulian.chain.topology": 2.5,
    "shulian.perimeter.identities": 2,  # principal names and secrets: values the registry uses
    "shulian.perimeter.tls": 2,  # certificates (cryptography only): the Kafka engine makes its PKI
    "shulian.logic": 3,
    "shulian.chain": 4,
    # I/O adapters at the edge
    "shulian.serde": 5,
    "shulian.io": 5,
    "shulian.embedded": 5,
    # services that orchestrate (callable from the CLI, the console and the tests alike)
    "shulian.audit": 6,
    "shulian.registry": 6,
    "shulian.verification": 6,  # joint verification: store, limits and audit behind the API
    "shulian.scenario": 7,  # the demo's scenario: publish, then measure what the chain did
    "shulian.perimeter": 7,  # identities, the ACL plan (pure) and its reconciliation
    # runtimes: Faust agents and connector loops
    "shulian.streams": 8,
    "shulian.connectors": 8,
    # entry points: the console's pages, the benchmark harness (it measures the console too)
    # and the CLI, each parsing, calling a service and printing
    "shulian.console": 9,
    "shulian.bench": 10,
    "shulian.cli": 11,
}

PURE = ("shulian.catalog", "shulian.chain.topology", "shulian.logic", "shulian.chain")
IO_LIBRARIES = ("confluent_kafka", "faust", "mode", "aiokafka", "fastapi", "starlette",
                "httpx", "uvicorn", "psycopg", "prometheus_client")

KNOWN_DEBT: set[tuple[str, str]] = {
    # the ACL plan reads connector configs (which consumer group, which topics) the same way
    ("shulian.perimeter.service", "shulian.connectors.config"),
}


def package_of(module: str) -> str:
    """The ranked package a module belongs to (its longest prefix in ``RANK``)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        # "shulian" itself is its __init__ only: shulian.<package> needs a rank of its own
        if candidate in RANK and (candidate != "shulian" or module == "shulian"):
            return candidate
    raise AssertionError(f"{module} belongs to no layer: add its package to RANK and to "
                         "docs/ARCHITECTURE.md")


def modules() -> Iterator[tuple[str, Path]]:
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            if folder == "shulian" and rel.parts[0] in GENERIC:
                continue  # the symlinked folders, walked under their own name
            name = ".".join((package, *rel.parts))
            yield (name.removesuffix(".__init__"), path)


def imports_of(path: Path) -> Iterator[str]:
    """Absolute module names imported anywhere in the file (function-level imports too)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def against_direction() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for module, path in modules():
        own = package_of(module)
        for target in imports_of(path):
            if target.split(".")[0] not in TOP_LEVEL:
                continue
            other = package_of(target)
            if other != own and RANK[other] >= RANK[own]:
                found.add((module, target))
    return found


def test_every_module_has_a_layer() -> None:
    for module, _ in modules():
        package_of(module)


def test_imports_point_down() -> None:
    found = against_direction()
    new = sorted(found - KNOWN_DEBT)
    assert not new, "imports against the layer direction (docs/ARCHITECTURE.md): " + ", ".join(
        f"{a} -> {b}" for a, b in new)
    paid = sorted(KNOWN_DEBT - found)
    assert not paid, "no longer imported, remove from KNOWN_DEBT: " + ", ".join(
        f"{a} -> {b}" for a, b in paid)


def test_the_pure_core_imports_no_io_library() -> None:
    offenders = [
        (module, target)
        for module, path in modules() if package_of(module) in PURE
        for target in imports_of(path) if target.split(".")[0] in IO_LIBRARIES
    ]
    assert not offenders, f"the pure core imports an I/O library: {offenders}"


def test_the_check_sees_a_violation() -> None:
    """The rank rule itself: a core module importing a runtime is against the direction."""
    assert RANK[package_of("shulian.logic.policy")] < RANK[package_of("shulian.streams.app")]
    assert RANK[package_of("shulian.io.kafka")] < RANK[package_of("shulian.audit.check")]


def test_no_generic_top_level_package() -> None:
    """streams, connectors and bench are installed under shulian.* only (issue 18, item 2): no
    module imports them by their generic names, and outside the repository they do not exist."""
    offenders = [(module, target) for module, path in modules() for target in imports_of(path)
                 if target.split(".")[0] in GENERIC]
    tests = [(str(path), target) for path in sorted((ROOT / "tests").rglob("*.py"))
             for target in imports_of(path) if target.split(".")[0] in GENERIC]
    assert not offenders and not tests, offenders + tests
    for name in GENERIC:
        assert (ROOT / "shulian" / name).resolve() == (ROOT / name).resolve()
    probe = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u, sys; "
         "sys.path = [p for p in sys.path if p not in ('', '.')]; "
         "print([n for n in ('streams', 'connectors', 'bench') if u.find_spec(n)])"],
        cwd="/", capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "[]", probe.stdout
