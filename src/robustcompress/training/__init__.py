"""Training: natural, adversarial, regularized and fine-tuning runs, tracked and resumable.

* :mod:`~robustcompress.training.trainer`: the training loop (Langenberg et al. 2019,
  §5) with adversarial examples, the regularizers of eq. (8), proximal steps, masks
  and :class:`~robustcompress.training.trainer.Callback` hooks;
* :mod:`~robustcompress.training.divergence`: stops a run whose loss explodes or
  whose accuracy collapses to chance (status ``diverged``);
* :mod:`~robustcompress.training.extras`: the registry of training extras (stateful
  callbacks a run config names, e.g. ``magnitude_pruning``);
* :mod:`~robustcompress.training.trackers`: accuracy, loss terms, fooling ratios and
  structure measures on a fixed evaluation subset, appended to ``metrics.jsonl``;
* :mod:`~robustcompress.training.checkpoint`: safetensors + JSON checkpoints and
  :func:`~robustcompress.training.checkpoint.load_model`;
* :mod:`~robustcompress.training.rng`: derived seeds and captured RNG states that
  make a resumed run identical to an uninterrupted one;
* :mod:`~robustcompress.training.progress`: the run log and progress bars.
"""

from robustcompress.training.checkpoint import load_model, load_weights, read_checkpoint
from robustcompress.training.divergence import DivergenceMonitor
from robustcompress.training.extras import (
    ActivationL1,
    MagnitudePruning,
    ProgressivePruning,
    SettingError,
    Snapshots,
    SpectralNormalization,
    build_extra,
    list_extras,
    register_extra,
)
from robustcompress.training.progress import Reporter, RunLog, make_reporter
from robustcompress.training.rng import derive_seed
from robustcompress.training.trackers import (
    ActivationSparsityTracker,
    CleanTracker,
    EvaluationContext,
    FoolingRatioTracker,
    GeneralizationTracker,
    Measurement,
    MetricRecord,
    MutualInformationTracker,
    OperatorSpectrumTracker,
    StructureTracker,
    Tracker,
    latest_values,
    read_metrics,
)
from robustcompress.training.trainer import (
    SCHEDULES,
    AdversarialTraining,
    Callback,
    OptimizerFactory,
    Trainer,
    TrainingSettings,
    TrainResult,
    learning_rate,
)

__all__ = [
    "SCHEDULES",
    "ActivationL1",
    "ActivationSparsityTracker",
    "AdversarialTraining",
    "Callback",
    "CleanTracker",
    "DivergenceMonitor",
    "EvaluationContext",
    "FoolingRatioTracker",
    "GeneralizationTracker",
    "MagnitudePruning",
    "Measurement",
    "MetricRecord",
    "MutualInformationTracker",
    "OperatorSpectrumTracker",
    "OptimizerFactory",
    "ProgressivePruning",
    "Reporter",
    "RunLog",
    "SettingError",
    "Snapshots",
    "SpectralNormalization",
    "StructureTracker",
    "Tracker",
    "TrainResult",
    "Trainer",
    "TrainingSettings",
    "build_extra",
    "derive_seed",
    "latest_values",
    "learning_rate",
    "list_extras",
    "load_model",
    "load_weights",
    "make_reporter",
    "read_checkpoint",
    "read_metrics",
    "register_extra",
]
