"""One error hierarchy for robustcompress.

Every message says what went wrong, where (file, key, layer) and how to fix it.
The CLI prints a :class:`RobustCompressError` on one line and exits with status 2.
"""

from __future__ import annotations


class RobustCompressError(Exception):
    """Base class of every error robustcompress raises on purpose."""


class ConfigError(RobustCompressError, ValueError):
    """An invalid configuration value, key or argument."""


class DataError(RobustCompressError):
    """A data set is missing, corrupt, or cannot be downloaded."""


class ModelError(RobustCompressError, ValueError):
    """An unknown model, weight matrix, or a model that does not fit an operation."""


class AttackError(RobustCompressError, ValueError):
    """An unknown attack or invalid attack parameters."""


class CheckpointError(RobustCompressError):
    """A checkpoint is missing, corrupt, or does not match the model."""


class ExecutorError(RobustCompressError):
    """The machinery running jobs failed (a worker died, a cluster lost a node or cannot
    see the runs root), not the job itself."""


class TrainingError(RobustCompressError):
    """Training cannot continue (for example a non-finite loss)."""


class DivergedError(TrainingError):
    """Training diverged (non-finite values, an exploding loss, accuracy collapsing to
    chance): the run is recorded as ``diverged`` and its model must not be evaluated."""
