"""A virtual slot machine (EGM) that speaks SAS over any transport.

``emulator.model.Machine`` is the pure machine; ``emulator.server.Emulator`` serves it over a
``drivers.Transport`` with ``sas_protocol.MachineProtocol``; ``emulator.scenario`` drives it
(seeded autoplay or scripted YAML steps). See docs/emulator.md.
"""

from __future__ import annotations

from emulator.model import Door, GameConfig, LifetimeTotals, Machine, MachineConfig

__all__ = ["Door", "GameConfig", "LifetimeTotals", "Machine", "MachineConfig"]
