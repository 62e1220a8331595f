"""Checks that every port the local stack needs is free, before anything starts.

A taken port is the most common reason a local stack fails to start; finding it up front gives a
message naming the part, the port and the option that moves it, instead of a bind error half-way
through start-up with some parts already running.
"""

from __future__ import annotations

from collections.abc import Iterable

from lepton.dev.azurite import port_is_free
from lepton.dev.settings import HOST, PortOption
from lepton.shared.errors import ConfigurationError


class PortInUseError(ConfigurationError):
    code = "port_in_use"


def check_ports_free(ports: Iterable[PortOption]) -> None:
    """Raise :class:`PortInUseError` naming every taken port and how to choose another."""
    taken = [p for p in ports if not port_is_free(p.port, HOST)]
    if not taken:
        return
    lines = [
        f"port {p.port} on {HOST} ({p.part}) is already in use: stop what listens there "
        f"(`lsof -i :{p.port}`) or choose another port with `lepton dev {p.option} N` "
        f"(or env {p.env})"
        for p in taken
    ]
    raise PortInUseError("; ".join(lines))
