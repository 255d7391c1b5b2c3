"""A virtual slot machine (EGM) that speaks SAS over any transport.

``emulator.model.Machine`` is the pure machine; ``emulator.server.Emulator`` serves it over a
``drivers.Transport`` with ``sas_protocol.machine.MachineProtocol``;
``emulator.tcp_serving.TcpServing`` serves an ``Emulator`` on a TCP listener, one host at a
time; ``emulator.scenario`` drives it (seeded autoplay or scripted YAML steps). See
docs/emulator.md.
"""

from __future__ import annotations

from emulator.autoplay import AutoPlayer, AutoplaySettings
from emulator.model import (
    Door,
    GameConfig,
    LifetimeTotals,
    Machine,
    MachineConfig,
    PlayRefusedError,
)
from emulator.profiles import PROFILES, Profile, ProfileError, link_options
from emulator.report import build_report, write_report
from emulator.scenario import (
    Scenario,
    ScenarioError,
    ScenarioRunner,
    load_scenario,
    parse_scenario,
)
from emulator.server import Emulator, LinkOptions, LinkStats
from emulator.tcp_serving import TcpServing

__all__ = [
    "PROFILES",
    "AutoPlayer",
    "AutoplaySettings",
    "Door",
    "Emulator",
    "GameConfig",
    "LifetimeTotals",
    "LinkOptions",
    "LinkStats",
    "Machine",
    "MachineConfig",
    "PlayRefusedError",
    "Profile",
    "ProfileError",
    "Scenario",
    "ScenarioError",
    "ScenarioRunner",
    "TcpServing",
    "build_report",
    "link_options",
    "load_scenario",
    "parse_scenario",
    "write_report",
]
