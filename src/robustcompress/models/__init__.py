"""Model architectures, the model registry, and the weight-matrix handle."""

from robustcompress.models import cnn, fcnn, lenet, linear, resnet  # noqa: F401  (registration)
from robustcompress.models.init import INIT_SCHEMES, initialize
from robustcompress.models.registry import ModelSpec, create_model, list_models, model_spec
from robustcompress.models.representations import capture_representations, hidden_layer_names
from robustcompress.models.weights import WeightMatrix, resolve_weight_matrix, weight_matrices

__all__ = [
    "INIT_SCHEMES",
    "ModelSpec",
    "WeightMatrix",
    "capture_representations",
    "create_model",
    "hidden_layer_names",
    "initialize",
    "list_models",
    "model_spec",
    "resolve_weight_matrix",
    "weight_matrices",
]
