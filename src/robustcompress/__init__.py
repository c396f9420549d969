"""robustcompress: measure, induce and attack structure in neural networks.

A laboratory for the question of which structure (low-rank and sparse weights,
low-dimensional representations, fewer connections) makes a network robust to
adversarial examples. See the README for the papers it implements.
"""

from robustcompress import attacks, data, errors, evaluation, models, regularizers, structure
from robustcompress.errors import RobustCompressError

__version__ = "0.1.0"

__all__ = [
    "RobustCompressError",
    "__version__",
    "attacks",
    "data",
    "errors",
    "evaluation",
    "models",
    "regularizers",
    "structure",
]
