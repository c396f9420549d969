"""Random-number bookkeeping that makes a killed run resume bit for bit.

The design has two halves.

* **Derived seeds** for everything whose randomness can be named: the data order of
  epoch ``e`` is shuffled with ``derive_seed(seed, "data-order", e)`` and the attack
  that makes the adversarial examples of step ``t`` is seeded with
  ``derive_seed(seed, "adversarial", t)``. A resumed run recomputes these from the
  run seed and its position, so nothing about them has to be stored.
* **Captured global state** for whatever still draws from the global generators
  (dropout, a user callback): :func:`capture_rng_state` returns the torch CPU (and
  CUDA, when used), NumPy and Python ``random`` states, split into tensors (stored in
  the checkpoint's safetensors) and JSON scalars (stored in its metadata), and
  :func:`restore_rng_state` puts them back. No pickle is involved.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch

_MASK_63 = (1 << 63) - 1


def derive_seed(*parts: object) -> int:
    """A 63-bit seed determined by ``parts`` (e.g. ``derive_seed(0, "data-order", 3)``).

    ``sha256`` of the parts' ``repr`` joined by ``|``: stable across processes and
    Python versions (unlike ``hash``), and unrelated seeds for neighbouring inputs
    (unlike ``seed + epoch``, which would make run ``seed=1`` epoch 0 replay run
    ``seed=0`` epoch 1).
    """
    digest = hashlib.sha256("|".join(repr(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & _MASK_63


def seed_everything(seed: int) -> None:
    """Seed the global torch (CPU and CUDA), NumPy and Python generators with ``seed``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def capture_rng_state(*, cuda: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The global RNG states as ``(tensors, json_scalars)``.

    ``tensors`` holds the torch CPU generator state ``torch_cpu`` (and
    ``torch_cuda.<d>`` per CUDA device when ``cuda``) as uint8 tensors;
    ``json_scalars`` holds the NumPy MT19937 state and the Python ``random`` state
    as plain lists and numbers.
    """
    tensors = {"torch_cpu": torch.get_rng_state()}
    if cuda and torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda.{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    scalars = {
        "numpy": {
            "kind": str(kind),
            "keys": [int(k) for k in keys],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "state": list(py_state), "gauss_next": gauss_next},
    }
    return tensors, scalars


def restore_rng_state(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states are restored when present)."""
    torch.set_rng_state(tensors["torch_cpu"].to(torch.uint8).cpu())
    cuda_states = sorted(
        (k for k in tensors if k.startswith("torch_cuda.")), key=lambda k: int(k.split(".")[1])
    )
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k].to(torch.uint8).cpu() for k in cuda_states])
    npy = scalars["numpy"]
    np.random.set_state(
        (
            npy["kind"],
            np.asarray(npy["keys"], dtype=np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    py = scalars["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
