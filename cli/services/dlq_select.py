"""Which dead letters an operator means: the filter, durations (``--older-than 2h``), ages,
and who acts (for the audit log)."""

from __future__ import annotations

import fnmatch
import getpass
import re
import time
from dataclasses import dataclass
from typing import Any

from state.dlq import DeadLetter

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


class DurationError(ValueError):
    """A duration that is not like ``30s``, ``15m``, ``2h``, ``3d`` or ``1h30m``."""


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``15m``, ``2h``, ``3d``, ``1w`` or a sum like ``1h30m``."""
    cleaned = text.strip().lower()
    pos = 0
    total = 0.0
    for match in _DURATION.finditer(cleaned):
        if cleaned[pos : match.start()].strip():
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    else:
        if pos and not cleaned[pos:].strip():
            return total
    raise DurationError(
        f"invalid duration {text!r}: use a number and a unit (s, m, h, d, w), "
        "e.g. 30s, 15m, 2h, 3d or 1h30m"
    )


def format_age(seconds: float) -> str:
    """A short human age: ``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def default_actor() -> str:
    """Who acts: the OS user (``--actor`` overrides it)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters an operator means; empty fields match everything.

    Several values of one field are alternatives; ``keys`` are globs (``C0001*``).
    """

    targets: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    flows: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    older_than_s: float | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.targets
            or self.codes
            or self.flows
            or self.entities
            or self.keys
            or self.older_than_s is not None
        )

    def matches(self, entry: DeadLetter, now: float | None = None) -> bool:
        """True when ``entry`` passes every given criterion."""
        if self.targets and entry.target not in self.targets:
            return False
        if self.codes and entry.code not in self.codes:
            return False
        if self.flows and entry.flow not in self.flows:
            return False
        if self.entities and entry.entity not in self.entities:
            return False
        if self.keys and not any(fnmatch.fnmatchcase(entry.key, k) for k in self.keys):
            return False
        if self.older_than_s is not None:
            now = time.time() if now is None else now
            if now - entry.last_failure_at.timestamp() < self.older_than_s:
                return False
        return True

    def as_dict(self) -> dict[str, Any]:
        """The criteria given (for the audit log and ``--json``)."""
        out: dict[str, Any] = {}
        for name in ("targets", "codes", "flows", "entities", "keys"):
            values = getattr(self, name)
            if values:
                out[name] = list(values)
        if self.older_than_s is not None:
            out["older_than_s"] = self.older_than_s
        return out
