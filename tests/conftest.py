"""Fixtures come from tests/fixtures/*, one module per real part, listed here explicitly."""

pytest_plugins = [
    "tests.fixtures.broker",
    "tests.fixtures.registry",
    "tests.fixtures.postgres",
    "tests.fixtures.chain",
    "tests.fixtures.cluster",
    "tests.fixtures.secure_kafka",
    "tests.fixtures.perimeter",
]
