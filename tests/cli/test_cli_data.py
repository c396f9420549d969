"""``robustcompress data``: table, JSON, verification and exit status."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from robustcompress.cli import data as data_command


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    data_command.register(parser.add_subparsers())
    args = parser.parse_args(["data", *argv])
    return args.func(args)


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from robustcompress.data import locate

    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(locate, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    return tmp_path


def _fake_mnist(folder: Path) -> None:
    folder.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (folder / f"{name}.gz").write_bytes(b"not mnist")
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(b"not mnist either")


def test_json_lists_found_and_missing(isolated: Path, capsys) -> None:
    _fake_mnist(isolated / "root" / "mnist")
    assert _run(["--json", "--root", str(isolated / "root")]) == 0
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert sorted(records) == [
        "cifar10",
        "fashion-mnist",
        "mnist",
        "mnist-1v7",
        "synthetic-subspace",
    ]
    mnist = records["mnist"]
    subset = records["mnist-1v7"]  # a class subset is where its base data set is
    assert subset["found"] and subset["directory"] == mnist["directory"]
    assert "classes 1, 7" in subset["title"]
    assert mnist["found"] and mnist["origin"] == "root argument" and mnist["verified"] is None
    assert mnist["directory"] == str(isolated / "root" / "mnist")
    assert records["cifar10"]["found"] is False
    assert records["cifar10"]["searched"] == [
        str(isolated / "root" / "cifar10"),
        str(isolated / "cache" / "robustcompress" / "cifar10"),
        str(isolated / "system" / "cifar10"),
    ]


def test_verify_reports_mismatches_with_exit_status_1(isolated: Path, capsys) -> None:
    _fake_mnist(isolated / "root" / "mnist")
    assert _run(["--verify", "--json", "--data-root", str(isolated / "root")]) == 1
    mnist = next(r for r in json.loads(capsys.readouterr().out) if r["name"] == "mnist")
    assert mnist["verified"] is False
    assert {f["status"] for f in mnist["files"]} == {"mismatch"}


def test_table_of_the_real_files(monkeypatch, capsys) -> None:
    from robustcompress.data.locate import dataset_status

    if not dataset_status("mnist").found:
        pytest.skip("real MNIST files not found")
    assert _run(["--verify"]) == 0
    out = capsys.readouterr().out
    mnist_row = next(line for line in out.splitlines() if " mnist " in line)
    assert "found" in mnist_row and "ok" in mnist_row
