"""``shulian up`` checks every port before it starts anything and names the busy one with the
option and variable that move it; the stack has no separate gateway child."""

from __future__ import annotations

import socket

from shulian.cli.up import stack_ports
from shulian.embedded.net import free_port
from shulian.embedded.stack import Endpoints, PortUse, busy_ports, stack_children
from shulian.settings import load_settings


def test_a_busy_port_is_named_with_its_option_and_variable() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        uses = [PortUse("broker", "127.0.0.1", free_port(), "--broker-port",
                        "SHULIAN_BROKER_PORT"),
                PortUse("schema registry", "127.0.0.1", port, "--registry-port",
                        "SHULIAN_REGISTRY_PORT")]
        err = busy_ports(uses)
    assert err is not None
    assert [i.field for i in err.issues] == ["--registry-port"]
    assert str(err).count("in use") == 1
    assert (f"port {port} on 127.0.0.1 (schema registry) is in use; choose another with "
            "--registry-port or SHULIAN_REGISTRY_PORT") in str(err)
    assert busy_ports(uses[:1]) is None


def test_every_listening_child_is_checked() -> None:
    settings = load_settings(broker_port=free_port(), registry_port=free_port(),
                             metrics_port=free_port(), gateway_port=free_port())
    children = stack_children(settings, Endpoints.from_settings(settings),
                              commands={"registry", "worker", "gateway", "connect"})
    assert "gateway" not in {c.name for c in children}  # served by the connect child
    uses = stack_ports(settings, children, postgres_port=free_port(), gateway=True)
    assert {u.option for u in uses} >= {"--broker-port", "--registry-port", "--metrics-port"}
