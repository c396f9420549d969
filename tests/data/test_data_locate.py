"""Finding data: search order, accepted layouts, and the message when nothing is found."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustcompress.data import locate
from robustcompress.data.catalog import CIFAR10
from robustcompress.data.locate import (
    canonical_name,
    dataset_status,
    find_dataset,
    list_datasets,
    locate_dataset,
    search_roots,
)
from robustcompress.errors import ConfigError, DataError


def test_search_order(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = f"{isolated / 'env1'}:{isolated / 'env2'}"
    monkeypatch.setenv(locate.ENV_VAR, env)
    roots = search_roots(isolated / "arg")
    assert [r.path for r in roots] == [
        isolated / "arg",
        isolated / "env1",
        isolated / "env2",
        isolated / "cache" / "robustcompress",
        isolated / "system",
    ]
    assert [r.origin for r in roots] == [
        "root argument",
        "$ROBUSTCOMPRESS_DATA",
        "$ROBUSTCOMPRESS_DATA",
        "user cache",
        "system",
    ]


def test_duplicate_roots_are_searched_once(isolated: Path, monkeypatch) -> None:
    monkeypatch.setenv(locate.ENV_VAR, str(isolated / "same"))
    assert len(search_roots(isolated / "same")) == 3


def test_default_cache_is_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert locate.user_cache_dir() == tmp_path / ".cache" / "robustcompress"


def test_root_argument_wins_over_environment(isolated: Path, tiny_idx, monkeypatch) -> None:
    tiny_idx(isolated / "arg" / "mnist")
    tiny_idx(isolated / "env" / "mnist")
    monkeypatch.setenv(locate.ENV_VAR, str(isolated / "env"))
    found = find_dataset("mnist", isolated / "arg")
    assert found.directory == isolated / "arg" / "mnist" and found.origin == "root argument"
    assert locate_dataset("mnist") == isolated / "env" / "mnist"


def test_falls_through_to_cache_and_system(isolated: Path, tiny_idx) -> None:
    tiny_idx(isolated / "system" / "fashion-mnist")
    assert find_dataset("fashion-mnist", isolated / "empty").origin == "system"
    tiny_idx(isolated / "cache" / "robustcompress" / "fashion-mnist")
    assert find_dataset("fashion-mnist", isolated / "empty").origin == "user cache"


def test_decompressed_files_are_accepted(isolated: Path, tiny_idx) -> None:
    tiny_idx(isolated / "root" / "mnist", gz=False)
    found = find_dataset("mnist", isolated / "root")
    assert found.files["train-images-idx3-ubyte.gz"].name == "train-images-idx3-ubyte"


def test_missing_message_lists_every_place_and_the_fixes(isolated: Path, tiny_idx) -> None:
    partial = tiny_idx(isolated / "root" / "fashion-mnist")
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        locate_dataset("fashion-mnist", isolated / "root")
    message = str(info.value)
    assert "\n" not in message
    assert f"{partial} (root argument, lacks t10k-labels-idx1-ubyte.gz)" in message
    assert f"{isolated / 'cache' / 'robustcompress' / 'fashion-mnist'} (user cache)" in message
    assert f"{isolated / 'system' / 'fashion-mnist'} (system)" in message
    for fix in ("ROBUSTCOMPRESS_DATA=DIR", "--data-root", "apt-get install dataset-fashion-mnist"):
        assert fix in message


def test_cifar_extracted_batches_are_an_accepted_layout(isolated: Path) -> None:
    folder = isolated / "root" / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for spec in CIFAR10.alternative_files:
        (folder.parent / spec.name).write_bytes(b"")
    found = find_dataset("cifar10", isolated / "root")
    assert set(found.files) == {s.name for s in CIFAR10.alternative_files}


def test_names_and_aliases() -> None:
    assert list_datasets() == [
        "cifar10",
        "fashion-mnist",
        "mnist",
        "mnist-1v7",
        "synthetic-subspace",
    ]
    assert canonical_name("FMNIST") == "fashion-mnist"
    assert canonical_name("CIFAR-10") == "cifar10"
    with pytest.raises(ConfigError, match="unknown data set 'svhn': choose one of cifar10, "):
        canonical_name("svhn")


def test_status_with_and_without_verification(isolated: Path, tiny_idx) -> None:
    tiny_idx(isolated / "root" / "mnist")
    plain = dataset_status("mnist", isolated / "root")
    assert plain.found and plain.verified is None
    assert {c.status for c in plain.files} == {"unchecked"}
    checked = dataset_status("mnist", isolated / "root", verify=True)
    assert checked.verified is False  # random tiny files are not MNIST
    assert {c.status for c in checked.files} == {"mismatch"}
    missing = dataset_status("cifar10", isolated / "root")
    assert not missing.found and missing.searched[0] == isolated / "root" / "cifar10"
    assert dataset_status("synthetic-subspace").generated
