"""``run(config) -> RunRecord``: a training run as a pure function of its config.

The run directory is ``<runs root>/<name>-<config hash>/`` (see
:mod:`robustcompress.experiments.store`). Running a config that already finished
returns the stored record without recomputing; a config whose run was killed
continues from its newest good checkpoint; a config that failed in training
(non-finite loss) raises the stored error again until its directory is deleted,
while one that failed for another reason (data missing or unreadable) is tried
again. Every failure is recorded in ``summary.json`` with its one-line reason.

A config may start from another run (``training.init_from``, e.g. adversarial
fine-tuning of the naturally trained model, Langenberg et al. §5). The reference
is, in this order: a run name defined by the caller (a sweep's own runs), a config
file (relative to the referring config; it is run first if it has not been), a run
directory (also a directory name under the runs root: that is how ``config.yaml``
stores it, see :func:`~robustcompress.experiments.store.stored_start`), or the name
of a finished run under the runs root. The starting run's weights (its last
checkpoint) initialise the model; its config hash, not its path, enters this run's
hash, so moving a runs root changes no hash.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from robustcompress.device import resolve_device
from robustcompress.errors import (
    CheckpointError,
    ConfigError,
    DivergedError,
    RobustCompressError,
    TrainingError,
)
from robustcompress.experiments.config import (
    RunConfig,
    check_against_model,
    config_hash,
    load_config,
    parse_config,
)
from robustcompress.experiments.store import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LOG_FILE,
    SUMMARY_FILE,
    RunRecord,
    find_runs_by_name,
    one_line,
    read_json,
    read_record,
    run_dir_name,
    run_lock,
    run_status,
    runs_root,
    split_run_dir_name,
    stored_start,
    write_json_atomic,
    write_text_atomic,
)
from robustcompress.training.checkpoint import list_checkpoints, newest_good_checkpoint

ConfigLike = RunConfig | Mapping[str, Any] | str | os.PathLike[str]


def as_config(config: ConfigLike) -> RunConfig:
    """A validated :class:`RunConfig` from a config object, a mapping or a YAML path."""
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, Mapping):
        return parse_config(config)
    return load_config(Path(config))


def run(
    config: ConfigLike,
    *,
    runs_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    echo: bool = True,
    dependencies: Mapping[str, RunConfig] | None = None,
) -> RunRecord:
    """Train ``config`` (or return its stored run) and return its :class:`RunRecord`.

    Args:
        config: a :class:`RunConfig`, a mapping, or the path of a YAML config.
        runs_dir: the runs root (default ``$ROBUSTCOMPRESS_RUNS`` or ``./runs``).
        device: overrides ``config.device`` (not part of the hash).
        progress: rich progress bars (default: when stderr is a terminal).
        echo: without bars, echo log lines to stderr.
        dependencies: run names a sweep defines, for ``training.init_from``.
    """
    return _run(
        as_config(config),
        runs_root(runs_dir),
        device,
        progress,
        echo,
        dict(dependencies or {}),
        (),
    )


def resume(
    run_dir: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    echo: bool = True,
) -> RunRecord:
    """Continue the run in ``run_dir`` from its newest good checkpoint.

    A finished run is left as it is, unless its final checkpoint is corrupt: then it is
    trained again from its newest good checkpoint, and when every checkpoint is
    corrupt a :class:`CheckpointError` says so (and what to do).
    """
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    repair = record.status == "finished" and not _final_checkpoint_is_good(run_dir)
    if record.status == "finished" and not repair:
        return record
    config = parse_config(record.config, run_dir / CONFIG_FILE)
    root = run_dir.parent
    init = _resolve_start(config, root, device, progress, echo, {}, ())
    digest = config_hash(config, init.config_hash if init else None)
    if digest != record.config_hash:
        raise ConfigError(
            f"{run_dir / CONFIG_FILE}: its hash is {digest}, the directory says "
            f"{record.config_hash}: the file was edited; restore it or start a new run"
        )
    if repair:
        if echo:
            print(
                f"run {run_dir.name} finished, but its final checkpoint is corrupt: "
                "training it again from its newest good checkpoint",
                file=sys.stderr,
            )
        with run_lock(run_dir):
            (run_dir / SUMMARY_FILE).unlink(missing_ok=True)
    return _run(config, root, device, progress, echo, {}, ())


def _final_checkpoint_is_good(run_dir: Path) -> bool:
    """Whether a finished run's newest checkpoint verifies (or it has none).

    Raises :class:`CheckpointError` when every checkpoint is corrupt.
    """
    files = list_checkpoints(run_dir / CHECKPOINT_DIR)
    corrupt: list[str] = []
    good = newest_good_checkpoint(
        run_dir / CHECKPOINT_DIR,
        set_aside=False,
        on_corrupt=lambda path, reason: corrupt.append(
            f"{path.name}: {reason.partition(' is corrupt: ')[2] or reason}"
        ),
    )
    if not corrupt:
        return True
    if good is None:
        older = f"; and {len(files) - 1} older" if len(files) > 1 else ""
        raise CheckpointError(
            f"run {run_dir} finished, but every checkpoint of it is corrupt ({corrupt[0]}"
            f"{older}): its trained weights are lost; to train it again, delete "
            f"{run_dir / SUMMARY_FILE} and {run_dir / CHECKPOINT_DIR} and run "
            f"`robustcompress resume {run_dir}`"
        )
    return False


def _run(
    config: RunConfig,
    root: Path,
    device: str | torch.device | None,
    progress: bool | None,
    echo: bool,
    dependencies: dict[str, RunConfig],
    stack: tuple[str, ...],
) -> RunRecord:
    check_against_model(config)
    key = f"{config.source}#{config.name}"
    if key in stack:
        chain = " → ".join([*stack, key])
        raise ConfigError(f"{config.source}: training.init_from: circular starting runs: {chain}")
    init = _resolve_start(config, root, device, progress, echo, dependencies, (*stack, key))
    digest = config_hash(config, init.config_hash if init else None)
    run_dir = root / run_dir_name(config.name, digest)
    if run_status(run_dir) == "finished":
        return read_record(run_dir)

    def waiting() -> None:
        print(f"waiting for {run_dir.name}: another process is training it", file=sys.stderr)

    with run_lock(run_dir, on_wait=waiting):
        summary = read_json(run_dir / SUMMARY_FILE)
        if summary.get("status") == "failed" and summary.get("retryable"):
            if echo:
                reason = one_line(str(summary.get("error")))
                print(f"run {run_dir.name} failed before ({reason}); trying again", file=sys.stderr)
            (run_dir / SUMMARY_FILE).unlink()
            summary = {}
        if summary.get("status") in ("failed", "diverged"):
            error = DivergedError if summary["status"] == "diverged" else TrainingError
            raise error(
                f"run {run_dir} {summary['status']} before: {summary.get('error')} "
                f"(delete {run_dir} to run it again)"
            )
        if summary.get("status") != "finished":  # else another process just finished it
            resolved = config.to_dict()
            if init is not None:
                resolved["training"]["init_from"] = stored_start(init.run_dir, root)
            if not (run_dir / CONFIG_FILE).exists():
                write_text_atomic(run_dir / CONFIG_FILE, _yaml(resolved))
            _train(config, run_dir, digest, init, device, progress, echo)
    return read_record(run_dir)


def _yaml(data: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(data), sort_keys=False)


def _train(
    config: RunConfig,
    run_dir: Path,
    digest: str,
    init: RunRecord | None,
    device: str | torch.device | None,
    progress: bool | None,
    echo: bool,
) -> None:
    """Build data, model, regularizers, attacks, trackers and extras; train; write summary.json.

    The optimiser comes from :meth:`~robustcompress.experiments.config.OptimizerConfig.build`
    and the extras from :func:`robustcompress.training.extras.build_extra`.
    """
    from robustcompress import attacks
    from robustcompress.data import load_dataset
    from robustcompress.data.sampling import subsample_indices
    from robustcompress.models import create_model, initialize
    from robustcompress.regularizers import build_regularizer
    from robustcompress.training import (
        ActivationSparsityTracker,
        AdversarialTraining,
        CleanTracker,
        DivergenceMonitor,
        FoolingRatioTracker,
        GeneralizationTracker,
        MutualInformationTracker,
        OperatorSpectrumTracker,
        StructureTracker,
        Trainer,
        TrainingSettings,
        build_extra,
        derive_seed,
        load_weights,
        make_reporter,
    )

    torch_device = resolve_device(device if device is not None else config.device)
    reporter = make_reporter(run_dir / LOG_FILE, interactive=progress, echo=echo)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        reporter.message(f"run {run_dir.name} on {torch_device} (pid {os.getpid()})")
        # The layers' own draws and model.init's redraw both come from this seeding.
        torch.manual_seed(derive_seed(config.seed, "model-init"))
        model = initialize(
            create_model(config.model.name, **config.model.kwargs), config.model.init
        )
        if init is not None:
            _check_same_model(config, init)
            load_weights(model, init.run_dir)
            reporter.message(f"initialised from {init.run_dir.name}")
        dataset = config.data.dataset
        assert dataset is not None  # filled in by the schema
        train = load_dataset(dataset, "train", limit=config.data.limit, seed=config.data.seed)
        tracking = config.tracking
        evaluation = load_dataset(
            dataset,
            tracking.eval_split,
            limit=tracking.eval_size,
            seed=tracking.eval_seed,
        )
        regularizers = [build_regularizer(n, lam=r.lam) for n, r in config.regularizers.items()]
        adversarial = None
        adv = config.training.adversarial
        if config.training.mode == "adversarial" and adv is not None:
            attack = attacks.get(adv.attack, **adv.attack_params())
            adversarial = AdversarialTraining(attack, mix=adv.mix)
        trackers = [
            CleanTracker(),
            *(
                FoolingRatioTracker(
                    label,
                    attacks.get(name, **{"seed": derive_seed("tracking", label), **params}),
                )
                for label, (name, params) in tracking.attack_entries().items()
            ),
            StructureTracker(tracking.structure),
        ]
        if tracking.activation_sparsity:
            trackers.append(ActivationSparsityTracker())
        information = tracking.mutual_information
        if information.enabled:
            sample = load_dataset(
                dataset,
                tracking.eval_split,
                limit=information.eval_size,
                seed=tracking.eval_seed,
            )
            trackers.append(
                MutualInformationTracker(
                    (sample.images, sample.labels), noise_variance=information.noise_variance
                )
            )
        if tracking.operator_spectra.enabled:
            trackers.append(OperatorSpectrumTracker(tracking.operator_spectra.operator))
        general = tracking.generalization
        if general.enabled:
            # the training side is the data the run trains on (its limit), not the split
            seen = [
                train.subset(subsample_indices(train.labels, general.train_size, general.seed)),
                load_dataset(dataset, "test", limit=general.test_size, seed=general.seed),
            ]
            trackers.append(
                GeneralizationTracker(
                    (seen[0].images, seen[0].labels), (seen[1].images, seen[1].labels)
                )
            )
        extras = [build_extra(e.name, **e.settings()) for e in config.extras]
        if config.training.divergence.enabled:
            extras.append(DivergenceMonitor(**config.training.divergence.monitor_settings()))
        opt = config.optimizer
        assert opt.batch_size is not None
        settings = TrainingSettings(
            epochs=opt.epochs,
            batch_size=opt.batch_size,
            schedule=opt.schedule.name,
            step_size=opt.schedule.step_size,
            gamma=opt.schedule.gamma,
            power=opt.schedule.power,
            milestones=tuple(opt.schedule.milestones),
            proximal=config.proximal,
            seed=config.seed,
            track_every=tracking.every,
            track_every_epochs=tracking.every_epochs,
            checkpoint_every=config.checkpoint.every,
        )
        trainer = Trainer(
            model,
            train,
            settings,
            optimizer=opt.build,
            run_dir=run_dir,
            eval_data=(evaluation.images, evaluation.labels),
            regularizers=regularizers,
            adversarial=adversarial,
            trackers=trackers,
            callbacks=extras,
            device=torch_device,
            metadata={"name": config.name, "hash": digest, "config": config.to_dict()},
            reporter=reporter,
        )
        try:
            result = trainer.fit()
        except TrainingError as exc:
            status = _record_failure(
                run_dir, config.name, digest, exc, started, trainer.last_checkpoint
            )
            reporter.message(f"{status}: {exc}")
            raise
        write_json_atomic(
            run_dir / SUMMARY_FILE,
            {
                "name": config.name,
                "hash": digest,
                "status": "finished",
                "final": result.final,
                "steps": result.steps,
                "epochs": result.epochs,
                "stopped_early": result.stopped_early,
                "resumed_from_step": result.resumed_from_step,
                "timing": result.timing,
                "checkpoint": _relative(result.checkpoint, run_dir),
                "device": str(torch_device),
                "started": started,
                "ended": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
        )
    except Exception as exc:
        if not (run_dir / SUMMARY_FILE).exists():  # a training failure is recorded above
            _record_failure(run_dir, config.name, digest, exc, started)
            reporter.message(f"failed: {exc}")
        raise
    finally:
        reporter.close()


def _record_failure(
    run_dir: Path,
    name: str,
    digest: str,
    exc: Exception,
    started: str,
    checkpoint: Path | None = None,
) -> str:
    """Write the summary of a run that did not finish and return its status.

    ``diverged`` for a :class:`DivergedError`, else ``failed``. A failure outside
    training (data, config, a bug) is ``retryable``: running the config again tries
    again (after the data is fixed, say), unlike a failure in training, which would
    recur. ``checkpoint`` is the last one written, if any.
    """
    status = "diverged" if isinstance(exc, DivergedError) else "failed"
    error = str(exc) if isinstance(exc, RobustCompressError) else f"{type(exc).__name__}: {exc}"
    summary = {
        "name": name,
        "hash": digest,
        "status": status,
        "error": error,
        "reason": one_line(error),
        "retryable": not isinstance(exc, TrainingError),
        "started": started,
        "ended": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if checkpoint is not None:
        summary["checkpoint"] = _relative(checkpoint, run_dir)
    write_json_atomic(run_dir / SUMMARY_FILE, summary)
    return status


def _relative(path: Path | None, base: Path) -> str | None:
    return None if path is None else str(path.relative_to(base))


def _check_same_model(config: RunConfig, init: RunRecord) -> None:
    # The architecture only: model.init shapes weights the starting run's replace (and
    # runs stored before model.init existed do not record it).
    theirs = init.config.get("model", {})
    ours = config.to_dict()["model"]
    if any(theirs.get(key) != ours.get(key) for key in ("name", "kwargs")):
        raise ConfigError(
            f"{config.source}: training.init_from: the starting run {init.run_dir.name} "
            f"trained model {theirs}, this config builds {ours}; use the same model"
        )


def _resolve_start(
    config: RunConfig,
    root: Path,
    device: str | torch.device | None,
    progress: bool | None,
    echo: bool,
    dependencies: dict[str, RunConfig],
    stack: tuple[str, ...],
) -> RunRecord | None:
    """The finished run ``training.init_from`` names, running or resuming it if needed."""
    ref = config.training.init_from
    if ref is None:
        return None
    where = f"{config.source}: training.init_from"

    def run_dependency(dep: RunConfig) -> RunRecord:
        return _run(dep, root, device, progress, echo, dependencies, stack)

    if ref in dependencies:
        return run_dependency(dependencies[ref])
    source = Path(config.source)
    base = source.parent if source.is_file() else Path.cwd()
    path = Path(ref) if Path(ref).is_absolute() else base / ref
    if ref.endswith((".yaml", ".yml")):
        if not path.is_file():
            raise ConfigError(f"{where}: starting run config {path} does not exist")
        return run_dependency(load_config(path))
    # a run directory: the path itself, else one of the same name under the runs root
    # (how config.yaml stores it; an older absolute path after the root was moved)
    for run_path in (path, root / path.name):
        if (run_path / CONFIG_FILE).is_file():
            record = read_record(run_path)
            if record.status == "finished":
                return record
            dep = parse_config(record.config, run_path / CONFIG_FILE)
            return _run(dep, run_path.parent, device, progress, echo, dependencies, stack)
    candidates = find_runs_by_name(ref, root)
    finished = [d for d in candidates if run_status(d) == "finished"]
    if len(finished) == 1:
        return read_record(finished[0])
    if len(finished) > 1:
        hashes = ", ".join(split_run_dir_name(d)[1] for d in finished)
        raise ConfigError(
            f"{where}: several finished runs are named {ref!r} (hashes {hashes}); "
            "give the run directory or its config file instead"
        )
    if candidates:
        raise ConfigError(
            f"{where}: the starting run {candidates[-1]} is not finished "
            f"(status {run_status(candidates[-1])}); resume it with "
            f"`robustcompress resume {candidates[-1]}` or give its config file"
        )
    raise ConfigError(
        f"{where}: no starting run {ref!r}: no config file or run directory {path} and no "
        f"run named {ref!r} in {root}; give its config file (it is then run first)"
    )
