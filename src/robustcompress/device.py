"""Device selection: chosen once (by the CLI or the caller) and passed down."""

from __future__ import annotations

import torch

from robustcompress.errors import ConfigError


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Return the torch device for ``name``.

    ``"auto"`` (or ``None``) picks CUDA when it is available and the CPU otherwise;
    any other string is passed to :class:`torch.device` and validated.
    """
    if isinstance(name, torch.device):
        return name
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(
            f"unknown device {name!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} requested but CUDA is not available: use 'cpu' or 'auto'"
        )
    return device


def check_threads(threads: int | None, flag: str = "--threads") -> int | None:
    """``threads`` if it is ``None`` or an integer ≥ 1, else a one-line :class:`ConfigError`."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"{flag} must be ≥ 1 (torch threads per process), got {threads}")
    return threads


def set_threads(threads: int | None) -> int:
    """Use ``threads`` torch intra-op threads in this process; return the number in use.

    ``None`` leaves torch's default (one per core it may use). Validated like
    ``--threads`` (:func:`check_threads`).
    """
    threads = check_threads(threads)
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
