"""Private validation helpers of the attack classes (settings checks).

Each raises :class:`~robustcompress.errors.AttackError` naming the attack and the
setting. Nothing outside :mod:`robustcompress.attacks` imports this module: the tensor
operations attacks and evaluation share are public in :mod:`robustcompress.attacks.ops`.
"""

from __future__ import annotations

import math
from typing import Any

from robustcompress.errors import AttackError


def require_number(
    attack: str,
    setting: str,
    value: Any,
    *,
    minimum: float = 0.0,
    strict: bool = False,
    allow_none: bool = False,
) -> None:
    """Check ``value`` is a finite real ≥ ``minimum`` (> if ``strict``), or None if allowed."""
    if value is None and allow_none:
        return
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > minimum if strict else value >= minimum)
    )
    if not ok:
        bound = f"> {minimum:g}" if strict else f"≥ {minimum:g}"
        extra = " or None" if allow_none else ""
        raise AttackError(f"{attack}: {setting} must be a number {bound}{extra}, got {value!r}")


def require_int(
    attack: str, setting: str, value: Any, *, minimum: int = 0, allow_none: bool = False
) -> None:
    """Check ``value`` is an int ≥ ``minimum`` (or None if allowed)."""
    if value is None and allow_none:
        return
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
        extra = " or None" if allow_none else ""
        raise AttackError(f"{attack}: {setting} must be an int ≥ {minimum}{extra}, got {value!r}")


def require_choice(attack: str, setting: str, value: Any, choices: tuple[str, ...]) -> None:
    """Check ``value`` is one of ``choices``."""
    if value not in choices:
        raise AttackError(f"{attack}: {setting} must be one of {', '.join(choices)}, got {value!r}")


def require_bool(attack: str, setting: str, value: Any) -> None:
    """Check ``value`` is a bool."""
    if not isinstance(value, bool):
        raise AttackError(f"{attack}: {setting} must be true or false, got {value!r}")
