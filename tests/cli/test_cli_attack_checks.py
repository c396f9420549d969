"""``robustcompress attack`` refuses wrong pairings of model and data on one line, exit 2.

A checkpoint attacked on another data set than its run trained on used to report a
meaningless fooling ratio (an MNIST FCNN on Fashion-MNIST gave 1.0), images of another
shape reached torch's shape error, and ``--steps 0`` ran no step and reported 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from robustcompress.cli import main
from robustcompress.models import create_model
from robustcompress.training.checkpoint import checkpoint_name, write_checkpoint

FAST = ["--limit", "20", "--batch-size", "20", "--device", "cpu", "--no-masking"]
FAST += ["--attack", "fgsm", "--no-progress"]  # stderr holds only what is checked


pytestmark = pytest.mark.usefixtures("one_thread")


def _checkpoint(directory: Path, config: dict[str, Any], **kwargs: Any) -> str:
    """A checkpoint of an FCNN as the runner writes it (run config under config.config)."""
    torch.manual_seed(0)
    model = create_model("fcnn", hidden=(8, 8), **kwargs)
    meta = {
        "model": {"name": "fcnn", "kwargs": {"hidden": [8, 8], **kwargs}},
        "step": 1,
        "epoch": 1,
        "config": {"config": config} if config else {},
    }
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    return str(write_checkpoint(directory / checkpoint_name(1, 1), tensors, meta))


@pytest.fixture
def mnist_checkpoint(tmp_path: Path) -> str:
    return _checkpoint(tmp_path, {"data": {"dataset": "mnist"}})


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["attack", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_another_data_set_than_the_runs_is_refused(mnist_checkpoint, capsys) -> None:
    code, out, err = _cli([mnist_checkpoint, "--data", "fashion-mnist", *FAST], capsys)
    assert (code, out) == (2, "")
    assert err == (
        f"error: checkpoint {mnist_checkpoint} (fcnn) was trained on mnist, not fashion-mnist: "
        "its fooling ratio on other data means nothing; drop --data, or pass "
        "--allow-data-mismatch to attack it on fashion-mnist anyway\n"
    )


def test_the_override_attacks_and_warns(mnist_checkpoint, capsys) -> None:
    argv = [mnist_checkpoint, "--data", "fashion-mnist", "--allow-data-mismatch", *FAST]
    code, out, err = _cli(argv, capsys)
    assert code == 0
    assert "data: fashion-mnist test, 20 images" in out
    assert err == (
        f"warning: checkpoint {mnist_checkpoint} (fcnn) was trained on mnist; attacking it "
        "on fashion-mnist (--allow-data-mismatch)\n"
    )


@pytest.mark.parametrize("spelling", ["mnist", "MNIST", " mnist"])
def test_the_runs_own_data_set_in_any_spelling_is_accepted(
    spelling, mnist_checkpoint, capsys
) -> None:
    code, out, err = _cli([mnist_checkpoint, "--data", spelling, *FAST], capsys)
    assert code == 0 and err == ""
    assert "clean accuracy" in out


def test_images_of_another_shape_are_refused_even_with_the_override(
    mnist_checkpoint, capsys, monkeypatch
) -> None:
    def no_loading(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the data must not be loaded (or downloaded) before the check")

    monkeypatch.setattr("robustcompress.data.load_dataset", no_loading)
    argv = [mnist_checkpoint, "--data", "cifar10", "--allow-data-mismatch", *FAST]
    code, out, err = _cli(argv, capsys)
    assert (code, out) == (2, "")
    assert err == (
        f"error: checkpoint {mnist_checkpoint} (fcnn) takes 1×28×28 images but cifar10 "
        "images are 3×32×32: attack it on a data set of its input shape\n"
    )


def test_generated_images_of_another_shape_are_refused(mnist_checkpoint, capsys) -> None:
    argv = [mnist_checkpoint, "--data", "synthetic-subspace", "--allow-data-mismatch", *FAST]
    code, _, err = _cli(argv, capsys)
    assert code == 2
    assert err.endswith(
        "takes 1×28×28 images but synthetic-subspace images are 1×1×784: "
        "attack it on a data set of its input shape\n"
    )
    assert err.count("\n") == 1


def test_an_untrained_model_takes_any_data_set_of_its_input_shape(capsys) -> None:
    code, out, _ = _cli(["cnn", "--data", "mnist", *FAST], capsys)  # cnn's default: fashion
    assert code == 0 and "data: mnist test" in out
    code, out, err = _cli(["fcnn", "--data", "cifar10", *FAST], capsys)
    assert (code, out) == (2, "")
    assert err == (
        "error: fcnn (UNTRAINED, random initialisation with seed 0) takes 1×28×28 images but "
        "cifar10 images are 3×32×32: attack it on a data set of its input shape\n"
    )


def test_a_checkpoint_without_its_data_set_is_probed_with_one_image(tmp_path, capsys) -> None:
    path = _checkpoint(tmp_path, {}, in_features=64)  # records no data set
    code, out, err = _cli([path, *FAST], capsys)  # fcnn's default data set: mnist
    assert (code, out) == (2, "")
    assert err.startswith(
        f"error: checkpoint {path} (fcnn) cannot take mnist images of shape 1×28×28 ("
    )
    assert "64" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("attack", "setting"),
    [("pgd", "--steps"), ("bim", "--steps"), ("gnm", "--steps"), ("deepfool", "--set")],
)
def test_zero_steps_are_refused_before_anything_is_loaded(
    attack, setting, capsys, monkeypatch
) -> None:
    def no_loading(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("settings are checked first")

    monkeypatch.setattr("robustcompress.cli.attack.load_target", no_loading)
    value = ["--set", "max_iter=0"] if setting == "--set" else ["--steps", "0"]
    code, out, err = _cli(["fcnn", "--attack", attack, *value], capsys)
    name = "max_iter" if setting == "--set" else "steps"
    assert (code, out) == (2, "")
    assert err == (
        f"error: {attack}: {name} must be an int ≥ 1 (an iterative attack takes at least "
        "one step), got 0\n"
    )
