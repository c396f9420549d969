"""Experiments: validated run configs, runs as pure functions of them, sweeps, executors.

* :mod:`~robustcompress.experiments.config`: the YAML schema (the one source of
  defaults), one-line config errors, the config hash;
* :mod:`~robustcompress.experiments.runner`: :func:`run` and :func:`resume`;
* :mod:`~robustcompress.experiments.store`: run directories, status, records;
* :mod:`~robustcompress.experiments.sweep`: base config × variants × grid, summaries;
* :mod:`~robustcompress.experiments.executor`: sequential, process-pool or Ray execution
  (:mod:`~robustcompress.experiments.ray_executor`, the extra ``robustcompress[ray]``).
"""

from robustcompress.experiments.config import (
    PAPER_OPTIMIZER,
    RunConfig,
    check_against_model,
    config_hash,
    load_config,
    parse_config,
)
from robustcompress.experiments.executor import (
    Executor,
    LocalProcessExecutor,
    SequentialExecutor,
    make_executor,
)
from robustcompress.experiments.runner import as_config, resume, run
from robustcompress.experiments.store import (
    RunRecord,
    list_runs,
    read_record,
    run_status,
    runs_root,
)
from robustcompress.experiments.sweep import (
    Sweep,
    SweepConfig,
    SweepPoint,
    SweepResult,
    expand,
    load_sweep,
    run_sweep,
    summarize,
)

__all__ = [
    "PAPER_OPTIMIZER",
    "Executor",
    "LocalProcessExecutor",
    "RunConfig",
    "RunRecord",
    "SequentialExecutor",
    "Sweep",
    "SweepConfig",
    "SweepPoint",
    "SweepResult",
    "as_config",
    "check_against_model",
    "config_hash",
    "expand",
    "list_runs",
    "load_config",
    "load_sweep",
    "make_executor",
    "parse_config",
    "read_record",
    "resume",
    "run",
    "run_status",
    "run_sweep",
    "runs_root",
    "summarize",
]
