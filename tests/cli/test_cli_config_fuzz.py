"""Fuzzing the config loader: no file makes ``run`` or ``sweep`` print a traceback.

Random bytes and random YAML documents (built from the config's own keys, so that
many get deep into validation) are written to a file and passed to the CLI's ``main``
in-process. Each must end with exit status 2 and exactly one line on stderr, or get
past validation. Nothing trains: the step after validation (``check_against_model``
and then training, or the sweep's executor) is replaced by one that checks the
configs against the models and stops.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from robustcompress.cli import main
from robustcompress.errors import RobustCompressError
from robustcompress.experiments import config as config_module
from robustcompress.experiments.config import RunConfig
from robustcompress.models import list_models


class _ValidationPassed(Exception):
    """Raised where training would start: the file got past validation."""


def _check_then_stop(config: Any, *args: Any, **kwargs: Any) -> None:
    config_module.check_against_model(config)
    raise _ValidationPassed


def _check_sweep_then_stop(sweep: Any, *args: Any, **kwargs: Any) -> None:
    # A sweep reports a run its checks refuse as that run's failure (exit status 1) and
    # goes on; only errors outside the hierarchy would be tracebacks.
    for point in sweep.points:
        with contextlib.suppress(RobustCompressError):
            config_module.check_against_model(point.config)
    raise _ValidationPassed


@contextlib.contextmanager
def _no_training() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("robustcompress.experiments.runner._run", _check_then_stop)
        patch.setattr("robustcompress.experiments.run_sweep", _check_sweep_then_stop)
        patch.setattr(
            "robustcompress.experiments.make_executor",
            lambda *a, **k: contextlib.nullcontext(),
        )
        yield


def _cli(command: str, content: bytes) -> tuple[int | None, str]:
    """Exit status (None: validation passed) and stderr of ``robustcompress COMMAND FILE``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_bytes(content)
        err = io.StringIO()
        with (
            _no_training(),
            contextlib.redirect_stderr(err),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            try:
                code: int | None = main([command, str(path), "--runs-dir", str(Path(tmp) / "runs")])
            except _ValidationPassed:
                code = None
    return code, err.getvalue()


def _assert_clean_exit(command: str, content: bytes) -> None:
    code, err = _cli(command, content)
    if code is None:
        return
    assert code == 2, (command, content, err)
    assert err.startswith("error: ") and len(err.splitlines()) == 1, (command, content, err)


RUN_KEYS = [
    "name", "data", "model", "training", "optimizer", "regularizers", "proximal", "extras",
    "tracking", "checkpoint", "seed", "device", "dataset", "limit", "kwargs", "hidden",
    "mode", "adversarial", "attack", "eps", "steps", "alpha", "init_from", "lr", "epochs",
    "batch_size", "schedule", "lam", "attacks", "structure", "every", "eval_size",
    "mutual_information", "enabled", "l1", "nuclear", "pgd", "fgsm",
]  # fmt: skip
SWEEP_KEYS = ["name", "base", "variants", "grid", "seed", "model.name", "training.mode"]

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["fcnn", "cnn", "mnist", "pgd", "fgsm", "adversarial", "cpu", "x"]),
)


def _documents(keys: list[str]) -> st.SearchStrategy[Any]:
    key = st.one_of(st.sampled_from(keys), st.text(max_size=8), st.integers(-3, 3))
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(key, inner, max_size=4)
        ),
        max_leaves=12,
    )


def _shaped_like(model: type[BaseModel], depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Mappings with some of ``model``'s own keys (nested sections likewise) and random
    values, plus the odd unknown key: configs that reach the checks after the schema."""
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, field in model.model_fields.items():
        values: list[st.SearchStrategy[Any]] = [VALUES.get(name, SCALARS)]
        for sub in _sections(field.annotation):
            values.append(_shaped_like(sub, depth + 1) if depth < 3 else st.just({}))
            values.append(st.dictionaries(st.sampled_from(LABELS), _shaped_like(sub, 3)))
            values.append(st.lists(_shaped_like(sub, 3), max_size=2))
        optional[name] = st.one_of(*values)
    optional["unknown_key"] = SCALARS
    return st.fixed_dictionaries({}, optional=optional)  # type: ignore[arg-type]


def _sections(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [s for arg in typing.get_args(annotation) for s in _sections(arg)]


LABELS = ["l1", "nuclear", "joint", "pgd", "fgsm", "gnm", "magnitude_pruning", "W1", "1"]
KWARGS = {
    "hidden": st.one_of(st.lists(st.integers(-2, 30), max_size=3), SCALARS),
    "in_features": st.one_of(st.integers(-2, 900), SCALARS),
    "num_classes": st.one_of(st.integers(-1, 12), SCALARS),
    "activation_name": st.one_of(st.sampled_from(["tanh", "relu", "nope"]), SCALARS),
    "mean": st.one_of(st.lists(st.floats(-1, 1), max_size=3), SCALARS),
    "std": st.one_of(st.lists(st.floats(-1, 1), max_size=3), SCALARS),
}
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "name": st.one_of(
        st.sampled_from([*list_models(), "magnitude_pruning", "run-1", "sgd", "adam"]), SCALARS
    ),
    "dataset": st.one_of(st.sampled_from(["mnist", "fmnist", "synthetic-subspace"]), SCALARS),
    "kwargs": st.one_of(st.fixed_dictionaries({}, optional=KWARGS), SCALARS),
    "attack": st.one_of(st.sampled_from(["fgsm", "pgd", "deepfool", "noise"]), SCALARS),
    "mode": st.one_of(st.sampled_from(["natural", "adversarial"]), SCALARS),
    "attacks": st.dictionaries(
        st.sampled_from(LABELS),
        st.dictionaries(
            st.sampled_from(["eps", "steps", "alpha", "attack", "random_start", "max_iter"]),
            st.one_of(st.integers(-1, 3), SCALARS),
            max_size=3,
        ),
        max_size=2,
    ),
    "structure": st.one_of(
        st.lists(st.sampled_from(["effective_rank", "effective_sparsity", "x"])), SCALARS
    ),
    "extras": st.lists(
        st.dictionaries(
            st.sampled_from(["name", "sparsity", "start_epoch", "end_epoch", "every"]),
            st.one_of(st.sampled_from(["magnitude_pruning", "nope"]), SCALARS),
            max_size=4,
        ),
        max_size=2,
    ),
}


def _leaf_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        subs = _sections(field.annotation)
        paths += _leaf_paths(subs[0], f"{prefix}{name}.") if subs else [f"{prefix}{name}"]
    return paths


PATHS = [
    *_leaf_paths(RunConfig),
    *(f"model.kwargs.{k}" for k in KWARGS),
    *(f"tracking.attacks.{a}.{k}" for a in ["pgd", "gnm"] for k in ["eps", "steps", "alpha"]),
    "training.adversarial.steps",
    "regularizers.l1.lam",
    "regularizers.nuclear.lam.W1",
]


def _nest(changes: list[tuple[str, Any]]) -> dict[str, Any]:
    """``{"name": "fuzz"}`` with each ``(dotted.path, value)`` set (later ones win)."""
    document: dict[str, Any] = {"name": "fuzz"}
    for path, value in changes:
        *parents, leaf = path.split(".")
        node = document
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[leaf] = value
    return document


#: A valid config with one to three settings changed to random values: these get past
#: the schema and reach the checks against the model, attacks and extras.
MUTATED = st.lists(
    st.sampled_from(PATHS).flatmap(
        lambda path: st.tuples(
            st.just(path),
            st.one_of(VALUES.get(path.rsplit(".", 1)[-1], SCALARS), st.integers(-2, 50)),
        )
    ),
    min_size=1,
    max_size=3,
).map(_nest)


def _yaml_bytes(document: Any) -> bytes:
    return yaml.safe_dump(document, allow_unicode=True).encode("utf-8")


FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize("command", ["run", "sweep"])
@FUZZ
@given(content=st.binary(max_size=200))
def test_random_bytes(command: str, content: bytes) -> None:
    _assert_clean_exit(command, content)


@pytest.mark.parametrize("command", ["run", "sweep"])
@FUZZ
@given(
    content=st.one_of(
        _documents(RUN_KEYS).map(_yaml_bytes),
        st.dictionaries(st.sampled_from(RUN_KEYS), _documents(RUN_KEYS), max_size=5).map(
            _yaml_bytes
        ),
    )
)
def test_random_yaml_documents(command: str, content: bytes) -> None:
    _assert_clean_exit(command, content)


@pytest.mark.parametrize("command", ["run", "sweep"])
@FUZZ
@given(document=st.one_of(MUTATED, _shaped_like(RunConfig)))
def test_random_run_configs(command: str, document: dict[str, Any]) -> None:
    _assert_clean_exit(command, _yaml_bytes(document))


@FUZZ
@given(
    document=st.fixed_dictionaries(
        {
            "base": st.one_of(
                MUTATED,
                _shaped_like(RunConfig),
                st.dictionaries(st.sampled_from(RUN_KEYS), _documents(RUN_KEYS), max_size=3),
                st.text(max_size=10),
            ),
        },
        optional={
            "name": st.one_of(st.just("s"), SCALARS),
            "grid": st.dictionaries(
                st.one_of(st.sampled_from(SWEEP_KEYS), st.text(max_size=10)),
                st.lists(SCALARS, max_size=3),
                max_size=2,
            ),
            "variants": st.dictionaries(
                st.text(max_size=6),
                st.dictionaries(st.sampled_from(SWEEP_KEYS), SCALARS),
                max_size=2,
            ),
        },
    )
)
def test_random_sweeps(document: dict[str, Any]) -> None:
    _assert_clean_exit("sweep", _yaml_bytes(document))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not a UTF-8 text file (byte 0 is 0x89)"),
        (bytes(range(256)), "not a UTF-8 text file (byte 128 is 0x80)"),
        (b"name: x\nseed: 2024-13-45\n", "invalid YAML value: month must be in 1..12"),
        (b"[" * 600 + b"]" * 600, "invalid YAML: nested too deeply"),
    ],
)
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_unreadable_configs_are_one_line(command: str, content: bytes, message: str) -> None:
    code, err = _cli(command, content)
    assert code == 2
    assert (
        err.count("\n") == 1
        and err.startswith("error: ")
        and err.rstrip().endswith(
            message if "UTF-8" not in message else "a config is a YAML text file"
        )
    )
    assert message in err


def test_a_line_break_in_a_file_name_stays_on_the_error_line(tmp_path, capsys) -> None:
    missing = tmp_path / "two\nlines\u2028.yaml"
    assert main(["run", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path}/two\\nlines\\u2028.yaml: no such config file\n"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ("{hidden: 5}", "'int' object is not iterable"),
        ("{in_features: -3}", "negative dimension -3"),
    ],
)
def test_model_options_the_factory_cannot_take_are_one_line(kwargs, reason, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(f"model: {{name: fcnn, kwargs: {kwargs}}}\n")
    assert main(["run", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: model.kwargs: fcnn cannot be built with {{")
    assert reason in err and len(err.splitlines()) == 1
