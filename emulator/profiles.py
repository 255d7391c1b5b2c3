"""Machine profiles a real floor has, selectable by name.

A profile is a named set of link quirks (``emulator.server.LinkOptions`` fields), so the
same machine model can be served as an old machine, an RTE machine, a machine that is often
busy or one on a noisy line. Profiles compose: ``legacy,noisy`` is an old machine on a bad
cable (ignored polls are united, RTE is on if any profile turns it on, rates take the
highest). Explicit settings (``busy_share``, ``noise`` ...) override the profile's defaults.

- ``modern``: answers every poll it implements (the default).
- ``legacy``: an old machine. It answers none of the polls in ``LEGACY_IGNORED_POLLS``
  (SAS §3.5: an unsupported long poll gets no reply, never a NACK), so bills are seen only
  through the bill meters (LP 1E / 20, and 0B / 24 in the legacy meter polls) and the bill
  exceptions 47-50 / 4F, tickets only through LP 4D and the meters it answers.
- ``legacy-std``: an old machine with standard validation and no bill meters
  (``LEGACY_STD_IGNORED_POLLS``): like ``legacy`` it answers no 0E/2F/6F/AF/A0/B0-B2, and
  it answers neither LP 4D (enhanced validation) nor the bill meter polls 1E/20/46; it does
  answer LP 3D (cash-out ticket information: standard validation, reference §3.9b) and LP 48
  (last accepted bill, §3.9). A host values its bills by LP 48 and its tickets by LP 3D.
- ``rte``: real-time event reporting on from power-up (SAS §12, as after LP 0E 01).
- ``busy``: a share of long polls starts a busy period during which every long poll is
  answered ``addr 00`` (reference §3.5); general polls are still answered.
- ``noisy``: line noise: each byte, in both directions, has one bit flipped at the set rate
  (seeded RNG, so a run can be repeated byte for byte).

The ignore list is a plain set of long poll codes checked before the responder
(``emulator.responder.answer``) sees a poll, so polls added to the responder later are
ignored by ``legacy`` just by being listed here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # emulator.server imports emulator.scenario, which imports this module
    from emulator.server import LinkOptions

__all__ = [
    "DEFAULT_BUSY_SECONDS",
    "DEFAULT_BUSY_SHARE",
    "DEFAULT_NOISE",
    "LEGACY_IGNORED_POLLS",
    "LEGACY_STD_IGNORED_POLLS",
    "PROFILES",
    "Profile",
    "ProfileError",
    "link_options",
    "parse_profile_names",
]

#: Long polls an old machine does not answer (reference §3.9, §3.9b): 0E (no real-time
#: events: "an EGM without RTE stays silent"), 2F (selected meters), 3D (cash-out ticket
#: info), 48 (last accepted bill), 6F/AF (extended meters), A0 (enabled features), B0-B2
#: (multi-denomination).
LEGACY_IGNORED_POLLS = frozenset({0x0E, 0x2F, 0x3D, 0x48, 0x6F, 0xAF, 0xA0, 0xB0, 0xB1, 0xB2})
#: ``legacy-std``: no real-time events, selected/extended meters, features or multi-denom
#: polls either, nor LP 4D (enhanced validation) and the bill meter polls 1E / 20 / 46
#: (reference §3.9b); LP 3D and LP 48 are answered.
LEGACY_STD_IGNORED_POLLS = frozenset({0x0E, 0x2F, 0x6F, 0xAF, 0xA0, 0xB0, 0xB1, 0xB2,
                                      0x4D, 0x1E, 0x20, 0x46})
#: ``busy``: share of long polls that start a busy period, and how long one lasts. 0.5 s
#: outlasts a host's next slot (200 ms, reference §2), so a retry is busy again sometimes.
DEFAULT_BUSY_SHARE = 0.05
DEFAULT_BUSY_SECONDS = 0.5
#: ``noisy``: fraction of bytes corrupted in each direction
DEFAULT_NOISE = 0.01


class ProfileError(ValueError):
    """An unknown profile name or a bad profile setting; the message names it."""


@dataclass(frozen=True, slots=True)
class Profile:
    """A named set of link quirks (see the module docstring)."""

    name: str
    description: str
    ignored_polls: frozenset[int] = frozenset()
    rte: bool = False
    busy_share: float = 0.0
    busy_seconds: float = 0.0
    noise: float = 0.0


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("modern", "answers every poll it implements"),
        Profile("legacy", "an old machine: no LP 0E/2F/3D/48/6F/AF/A0/B0-B2",
                ignored_polls=LEGACY_IGNORED_POLLS),
        Profile("legacy-std", "an old machine with standard validation: no LP 0E/2F/6F/AF/"
                "A0/B0-B2, no LP 4D, no bill meter polls 1E/20/46; answers LP 3D and LP 48",
                ignored_polls=LEGACY_STD_IGNORED_POLLS),
        Profile("rte", "real-time event reporting on from power-up", rte=True),
        Profile("busy", "answers a share of long polls busy for a while",
                busy_share=DEFAULT_BUSY_SHARE, busy_seconds=DEFAULT_BUSY_SECONDS),
        Profile("noisy", "line noise: corrupted bytes both ways", noise=DEFAULT_NOISE),
    )
}


def parse_profile_names(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"legacy,noisy"`` or ``["legacy", "noisy"]`` -> the names, checked."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(str(p).strip().lower() for p in parts if str(p).strip())
    for name in names:
        if name not in PROFILES:
            raise ProfileError(
                f"unknown profile {name!r} (one of: {', '.join(PROFILES)})")
    return names or ("modern",)


def _rate(value: float | None, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ProfileError(f"{key}: expected a fraction 0..1, got {value!r}")
    return float(value)


def link_options(
    names: str | Iterable[str] = "modern",
    base: LinkOptions | None = None,
    *,
    busy_share: float | None = None,
    busy_seconds: float | None = None,
    noise: float | None = None,
) -> LinkOptions:
    """``base`` (default ``LinkOptions()``) with the profiles' quirks applied on top.

    The profiles' ignored polls are added to ``base.unsupported_polls``; ``busy_share``,
    ``busy_seconds`` and ``noise`` replace the profiles' defaults when given (they apply
    whatever the profile, so ``modern`` with ``noise=0.02`` is a noisy modern machine).
    """
    from emulator.server import LinkOptions

    base = base or LinkOptions()
    chosen = [PROFILES[n] for n in parse_profile_names(names)]
    share = _rate(busy_share, "busy_share")
    rate = _rate(noise, "noise")
    if busy_seconds is not None and (isinstance(busy_seconds, bool)
                                     or not 0 <= busy_seconds < math.inf):  # nan, inf too
        raise ProfileError(f"busy_seconds: expected a finite number of seconds >= 0, got "
                           f"{busy_seconds!r}")
    ignored = frozenset().union(*(p.ignored_polls for p in chosen))
    noise_rate = rate if rate is not None else max(p.noise for p in chosen)
    return dataclasses.replace(
        base,
        profile=",".join(p.name for p in chosen),
        unsupported_polls=base.unsupported_polls | ignored,
        rte=base.rte or any(p.rte for p in chosen),
        busy_share=share if share is not None else max(p.busy_share for p in chosen),
        busy_seconds=(float(busy_seconds) if busy_seconds is not None
                      else max(p.busy_seconds for p in chosen)),
        corrupt=max(base.corrupt, noise_rate),
        corrupt_received=max(base.corrupt_received, noise_rate),
    )
