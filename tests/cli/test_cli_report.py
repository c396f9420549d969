"""``robustcompress report``: page, figures, ``--out``, ``--json`` and errors.

Runs are written by hand (config, metrics, summary; no training), so these tests are
fast; the reproduction report itself is tested in ``tests/reporting``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from robustcompress import cli
from robustcompress.cli import report as report_cli
from robustcompress.errors import ConfigError


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    report_cli.register(parser.add_subparsers())
    args = parser.parse_args(["report", *argv])
    return args.func(args)


def _run_dir(root: Path, name: str, seed: int) -> Path:
    run_dir = root / f"{name}-{seed}abc"
    run_dir.mkdir(parents=True)
    config = {"name": name, "seed": seed, "model": {"name": "fcnn"}, "data": {"dataset": "mnist"}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    rows = []
    for step in (0, 5, 10):
        rows.append({"step": step, "epoch": step // 5, "metric": "accuracy", "value": 0.5 + seed})
        rows.append(
            {"step": step, "epoch": step // 5, "metric": "fooling_ratio/fgsm", "value": 0.4}
        )
        for layer in ("W1", "W2"):
            row = {"step": step, "epoch": step // 5, "layer": layer, "value": 3.0 - 0.1 * step}
            rows.append({**row, "metric": "effective_rank"})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    final = {"accuracy": 0.5 + seed, "fooling_ratio/fgsm": 0.4, "effective_rank/W1": 2.0}
    summary = {"status": "finished", "final": final, "steps": 10, "epochs": 2}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def test_report_of_a_runs_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run_dir(tmp_path, "a", 0)
    _run_dir(tmp_path, "a", 1)
    assert run(str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'report.html'} (3 figures; 2 of 2 runs finished)" in out
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    for key in ("fcnn-accuracy", "fcnn-fooling", "fcnn-structure"):
        assert (tmp_path / "figures" / f"{key}.png").is_file()
        assert (tmp_path / "figures" / f"{key}.svg").is_file()
    assert "no weights drawn for a-0abc" in page  # hand-made runs have no checkpoint


def test_json_and_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _run_dir(tmp_path / "runs", "b", 0)
    out = tmp_path / "pages" / "b.html"
    assert run(str(run_dir), "--out", str(out), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["report"] == str(out) and out.is_file() and out.with_suffix(".json").is_file()
    assert data["kind"] == "run" and data["claims"] == []
    assert [f["key"] for f in data["figures"]] == [
        "fcnn-accuracy",
        "fcnn-fooling",
        "fcnn-structure",
    ]
    assert Path(data["figures"][0]["png"]).parent == out.parent / "figures"
    assert not (run_dir / "report.html").exists()


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run, sweep, runs-root or reproduction"):
        run(str(tmp_path))


@pytest.mark.skipif("report" not in cli.COMMANDS, reason="'report' is not in cli.COMMANDS yet")
def test_errors_are_one_line_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such directory" in err and err.count("\n") == 1
