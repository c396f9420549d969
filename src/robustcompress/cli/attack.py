"""``robustcompress attack``: fooling ratio, adversarial accuracy and masking flags of a model.

``MODEL_OR_CHECKPOINT`` is a checkpoint path (loaded with
``robustcompress.training.checkpoint.load_model``) or a registered model name, which
means an *untrained* model initialised with ``--seed`` (the output says so). The
model is attacked on the first ``--limit`` images (a seeded, class-stratified subset)
of the test split with :func:`robustcompress.evaluation.evaluate`; a comma-separated
``--eps`` gives a robustness curve, a comma-separated ``--attack`` several attacks.

Progress (which attack and ε is running, images done of total, images/s, time left)
goes to stderr: a live bar on a terminal, a plain line every few seconds otherwise
(:class:`robustcompress.training.progress.EvaluationDisplay`); ``--no-progress`` or
``ROBUSTCOMPRESS_PROGRESS=off`` turns it off. Stdout carries only the table or ``--json``.

``--data`` other than the data set a checkpoint's run trained on is refused unless
``--allow-data-mismatch`` is given; images whose shape is not the model's input shape
are refused always (:meth:`robustcompress.cli.targets.Target.choose_dataset`,
:meth:`~robustcompress.cli.targets.Target.check_images`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

import yaml

from robustcompress.cli.output import add_json_flag, print_json, print_table
from robustcompress.cli.run import add_threads_flag
from robustcompress.cli.targets import image_shape, load_target
from robustcompress.errors import ConfigError
from robustcompress.evaluation.robustness import DEFAULT_BATCH_SIZE

#: Columns of the terminal table (full rows are in ``--json``).
COLUMNS = {
    "attack": "attack",
    "eps": "ε",
    "fooling_ratio": "fooling ratio",
    "adversarial_accuracy": "adv. accuracy",
    "n_fooled": "fooled",
    "n_correct": "correct",
    "l2_median": "median ‖δ‖₂",
    "linf_median": "median ‖δ‖∞",
    "l2_relative": "‖δ‖₂/‖x‖₂",
}


def register(sub: argparse._SubParsersAction) -> None:
    from robustcompress.models import list_models

    p = sub.add_parser(
        "attack",
        help="attack a model: fooling ratio, adversarial accuracy, norms, masking flags",
        description=(
            "Attack a trained checkpoint (or an untrained registered model) on test images. "
            "Prints the fooling ratio (among correctly classified inputs, Langenberg et al. "
            "2019 §5), the adversarial accuracy (over all inputs), perturbation norms of the "
            "successful attacks and the gradient-masking flags."
        ),
    )
    p.add_argument(
        "target",
        metavar="MODEL_OR_CHECKPOINT",
        help=f"a checkpoint path or a registered model ({', '.join(list_models())}; untrained)",
    )
    p.add_argument(
        "--attack",
        default="pgd",
        help="attack name(s), comma-separated (default: pgd; see robustcompress.attacks)",
    )
    p.add_argument(
        "--eps",
        default=None,
        help="budget(s), comma-separated for a curve, e.g. 0,0.02,0.05 (default: the attack's)",
    )
    p.add_argument("--steps", type=int, default=None, help="iterations of iterative attacks")
    p.add_argument("--alpha", type=float, default=None, help="step size of iterative attacks")
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other attack setting, e.g. --set random_start=true (repeatable)",
    )
    p.add_argument(
        "--data",
        default=None,
        help="data set (default: the checkpoint's or the model's); a checkpoint trained on "
        "another data set is refused unless --allow-data-mismatch",
    )
    p.add_argument(
        "--allow-data-mismatch",
        action="store_true",
        help="attack a checkpoint on another data set than it was trained on (the images "
        "must still have its input shape)",
    )
    p.add_argument("--split", default="test", help="data split (default: test)")
    p.add_argument(
        "--limit", type=int, default=None, help="number of images, a seeded subset (default: all)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"images per batch (default: {DEFAULT_BATCH_SIZE})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the model initialisation (model names), the data subset and random "
        "starts (default: 0)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    add_threads_flag(
        p,
        default="torch's: every core; on a busy machine 1 can be faster, see benchmarks/threads.py",
    )
    p.add_argument(
        "--no-masking", action="store_true", help="skip the gradient-masking checks (faster)"
    )
    p.add_argument(
        "--per-sample", action="store_true", help="include per-sample arrays in --json output"
    )
    p.add_argument(
        "--no-progress",
        "--quiet",
        dest="progress",
        action="store_false",
        help="no progress on stderr (also: ROBUSTCOMPRESS_PROGRESS=off); by default a live "
        "bar on a terminal, a line every few seconds otherwise",
    )
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robustcompress.data import load_dataset
    from robustcompress.data.locate import canonical_name
    from robustcompress.device import resolve_device, set_threads
    from robustcompress.evaluation import evaluate
    from robustcompress.training.progress import EvaluationDisplay, progress_mode

    set_threads(args.threads)
    device = resolve_device(args.device)
    attacks = build_attacks(args)  # bad settings fail before anything is loaded
    target = load_target(args.target, args.seed, device)
    model, description = target.model, target.description
    dataset_name = target.choose_dataset(args.data, allow_mismatch=args.allow_data_mismatch)
    target.check_images(image_shape(dataset_name), dataset_name)  # before loading any files
    dataset = load_dataset(dataset_name, args.split, limit=args.limit, seed=args.seed)
    trained = target.trained_dataset
    if trained is not None and canonical_name(dataset_name) != trained:
        print(
            f"warning: {description} was trained on {trained}; attacking it on "
            f"{dataset_name} (--allow-data-mismatch)",
            file=sys.stderr,
        )
    with EvaluationDisplay(progress_mode(getattr(args, "progress", True))) as display:
        record = evaluate(
            model,
            dataset,
            attacks,
            eps=parse_eps(args.eps),
            device=device,
            batch_size=args.batch_size,
            check_masking=not args.no_masking,
            progress=display if display.mode != "off" else None,
        )
    data_description = f"{dataset_name} {args.split}, {record.n} images (seed {args.seed})"
    if args.json:
        print_json(
            {
                "model": description,
                "target": args.target,
                "data": {
                    "dataset": dataset_name,
                    "split": args.split,
                    "limit": args.limit,
                    "seed": args.seed,
                },
                **record.to_dict(per_sample=args.per_sample),
            }
        )
        return 0
    print(f"model: {description}")
    print(f"data: {data_description}; clean accuracy {record.clean_accuracy:.4f}")
    rows = [{COLUMNS[k]: row[k] for k in COLUMNS} for row in record.table()]
    for row in rows:
        row["ε"] = "unbounded" if row["ε"] is None else row["ε"]
    print_table(
        rows, list(COLUMNS.values()), title="fooling ratio over correctly classified inputs"
    )
    for label in record.attacks:
        stages = [
            {"ε": r["eps"], **r["broken_by"]} for r in record.summary(label) if "broken_by" in r
        ]
        if stages:
            print_table(
                stages,
                title=f"{label}: inputs broken by each stage, in order (clean: misclassified "
                "unattacked; robust: no stage broke it)",
            )
    if record.masking:
        print_table(
            [
                {
                    "check": f.name,
                    "triggered": "YES" if f.triggered else ("no" if f.checked else "—"),
                    "value": f.value,
                    "threshold": f.threshold,
                    "meaning": f.explanation,
                }
                for f in record.masking
            ],
            title="gradient-masking checks",
        )
        if record.masking_suspected:
            print("warning: gradient masking suspected; see the checks above", file=sys.stderr)
    return 0


def parse_eps(text: str | None) -> list[float] | None:
    """``"0,0.02,0.05"`` → ``[0.0, 0.02, 0.05]``; ``None`` stays ``None``."""
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"--eps {text!r}: give numbers separated by commas, e.g. --eps 0,0.02,0.05"
        ) from None


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``["steps=40", "random_start=true"]`` → ``{"steps": 40, "random_start": True}``.

    Values are read as YAML scalars (numbers, ``true``/``false``, ``null``, strings).
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: write KEY=VALUE, e.g. --set random_start=true")
        out[key.strip()] = yaml.safe_load(value)
    return out


def build_attacks(args: argparse.Namespace) -> dict[str, Any]:
    """The attacks named by ``--attack``, each given the settings it has.

    ``--steps``, ``--alpha`` and ``--set`` go to every listed attack that has that
    setting; a setting no listed attack has is an error. Attacks with a ``seed`` get
    ``--seed``, so random starts are reproducible.
    """
    from robustcompress.attacks import attack_class, get

    names = [n.strip() for n in args.attack.split(",") if n.strip()]
    if not names:
        raise ConfigError("--attack is empty: name at least one attack, e.g. --attack pgd")
    given = parse_settings(args.settings)
    for key in ("steps", "alpha"):
        if getattr(args, key) is not None:
            given[key] = getattr(args, key)
    fields = {n: {f.name for f in dataclasses.fields(attack_class(n))} for n in names}
    unused = sorted(k for k in given if not any(k in f for f in fields.values()))
    if unused:
        raise ConfigError(
            f"no attack among {', '.join(names)} has setting(s) {', '.join(unused)}: "
            "see robustcompress.attacks.list_attacks() for each attack's settings"
        )
    return {
        n: get(n, **{"seed": args.seed, **{k: v for k, v in given.items() if k in fields[n]}})
        for n in names
    }
