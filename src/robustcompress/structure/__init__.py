"""Structure measures of weight matrices: effective sparsity and rank, spectra, conv operators.

* :mod:`~robustcompress.structure.effective`: effective sparsity s(W) and effective
  rank r(W) (Langenberg et al. 2019, eqs. 2-3), exact sparsity;
* :mod:`~robustcompress.structure.spectrum`: singular values, spectral norm, stable
  rank, numerical rank, singular-value standard deviation;
* :mod:`~robustcompress.structure.conv`: exact spectrum of a convolution operator
  via the 2-D FFT (Sedghi et al. 2019);
* :mod:`~robustcompress.structure.information`: KDE bounds on the mutual information of
  hidden layers (Kolchinsky & Tracey 2017), as tracked by Langenberg et al. (Figure 2);
* :mod:`~robustcompress.structure.report`: all of them for every W_i of a model.
"""

from robustcompress.structure.conv import (
    ConvOperatorNorm,
    conv_layer_spectral_norm,
    conv_operator_singular_values,
    conv_spectral_norm,
)
from robustcompress.structure.effective import effective_rank, effective_sparsity, exact_sparsity
from robustcompress.structure.information import (
    DEFAULT_NOISE_VARIANCE,
    LabelMIEstimates,
    MIBounds,
    layer_mutual_information,
    mixture_entropy_bounds,
    mutual_information_input,
    mutual_information_label,
)
from robustcompress.structure.report import (
    REPORT_COLUMNS,
    conv_input_sizes,
    matrix_measures,
    report_to_csv,
    structure_report,
)
from robustcompress.structure.spectrum import (
    numerical_rank,
    singular_value_std,
    singular_values,
    spectral_norm,
    stable_rank,
)

__all__ = [
    "DEFAULT_NOISE_VARIANCE",
    "REPORT_COLUMNS",
    "ConvOperatorNorm",
    "LabelMIEstimates",
    "MIBounds",
    "conv_input_sizes",
    "conv_layer_spectral_norm",
    "conv_operator_singular_values",
    "conv_spectral_norm",
    "effective_rank",
    "effective_sparsity",
    "exact_sparsity",
    "layer_mutual_information",
    "matrix_measures",
    "mixture_entropy_bounds",
    "mutual_information_input",
    "mutual_information_label",
    "numerical_rank",
    "report_to_csv",
    "singular_value_std",
    "singular_values",
    "spectral_norm",
    "stable_rank",
    "structure_report",
]
