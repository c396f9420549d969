"""Config hashes that survive new features: :func:`added_field` and the frozen field set.

A field added to the run config changes nothing for a config that does not use it,
so stored runs must keep their hashes (their directory names). Fields added after
the hash was frozen are declared with :func:`added_field` and left out of the hash
while they hold their default; the guard test below keeps any other field from
slipping in.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from robustcompress.experiments.config import (
    HASH_ADDED,
    CheckpointConfig,
    OptimizerConfig,
    RegularizerConfig,
    RunConfig,
    TrackingConfig,
    added_field,
    config_hash,
    hash_payload,
    hashed_field_paths,
    parse_config,
)

FROZEN_HASH_FIELDS = frozenset(
    {
        "data",
        "data.dataset",
        "data.limit",
        "data.seed",
        "model",
        "model.kwargs",
        "model.name",
        "optimizer",
        "optimizer.batch_size",
        "optimizer.epochs",
        "optimizer.lr",
        "optimizer.momentum",
        "optimizer.name",
        "optimizer.nesterov",
        "optimizer.schedule",
        "optimizer.schedule.gamma",
        "optimizer.schedule.name",
        "optimizer.schedule.step_size",
        "optimizer.weight_decay",
        "proximal",
        "regularizers",
        "regularizers.*.lam",
        "seed",
        "tracking",
        "tracking.attacks",
        "tracking.eval_seed",
        "tracking.eval_size",
        "tracking.eval_split",
        "tracking.every",
        "tracking.mutual_information",
        "tracking.mutual_information.enabled",
        "tracking.mutual_information.eval_size",
        "tracking.mutual_information.noise_variance",
        "tracking.structure",
        "training",
        "training.adversarial",
        "training.adversarial.alpha",
        "training.adversarial.attack",
        "training.adversarial.eps",
        "training.adversarial.mix",
        "training.adversarial.random_start",
        "training.adversarial.steps",
        "training.init_from",
        "training.mode",
    }
)
"""The field paths the config hash covered when it was frozen (the schema of commit
61b22bc, generated with :func:`hashed_field_paths`). Never add to this set: declare
new fields with :func:`added_field` instead."""

OLD_HASHES: list[tuple[dict[str, Any], str | None, str]] = [
    ({"name": "a"}, None, "dcafa14c0a"),
    ({"name": "a", "model": {"name": "cnn"}}, None, "9f940699a1"),
    ({"name": "a", "tracking": {"mutual_information": {"enabled": True}}}, None, "8b5396a269"),
    (
        {
            "name": "a",
            "tracking": {
                "mutual_information": {"enabled": True, "eval_size": 64, "noise_variance": 0.5}
            },
        },
        None,
        "b7f00856c0",
    ),
    (
        {"name": "a", "tracking": {"mutual_information": {"enabled": False, "eval_size": 7}}},
        None,
        "dcafa14c0a",
    ),
    (
        {
            "name": "a",
            "training": {"mode": "adversarial", "adversarial": {"attack": "pgd", "steps": 3}},
        },
        None,
        "c2c2373ea6",
    ),
    (
        {"name": "a", "regularizers": {"nuclear": {"lam": {"W1": 0.01}}}, "proximal": True},
        None,
        "54472e5f8e",
    ),
    (
        {"name": "a", "optimizer": {"schedule": "cosine", "momentum": 0.9, "epochs": 3}, "seed": 4},
        None,
        "6770bdb334",
    ),
    ({"name": "a", "training": {"init_from": "other"}}, "0123456789", "baaceac61e"),
]
"""``(config, init_hash, hash)`` as computed by the code of commit 61b22bc (the hash of
the full dump, with the mutual-information section deleted while disabled)."""


def unmarked_new_fields(root: type[BaseModel] = RunConfig) -> list[str]:
    """Hashed field paths of ``root`` neither frozen nor declared with :func:`added_field`."""
    return sorted(
        path
        for path, marked in hashed_field_paths(root).items()
        if path not in FROZEN_HASH_FIELDS and not marked
    )


# ------------------------------------------------------------------ the guard


def test_every_field_added_since_the_hash_was_frozen_is_declared_with_added_field() -> None:
    new = unmarked_new_fields()
    assert not new, (
        f"config field(s) {', '.join(new)} would change the hash of every stored run: "
        "declare each new field (and each field of a new section) with "
        "robustcompress.experiments.config.added_field(default, ...) instead of Field(...), "
        "so it enters the hash only when set to a non-default value"
    )


def test_no_frozen_field_was_removed_or_renamed() -> None:
    gone = sorted(FROZEN_HASH_FIELDS - set(hashed_field_paths()))
    assert not gone, (
        f"config field(s) {', '.join(gone)} were removed or renamed: that changes the hash "
        "of every stored run (their directories would no longer be found)"
    )


# An extended schema, as future features will make it: marked fields in an existing
# section, in a section inside a dict, a new marked section with marked fields (and a
# nested section), and a new section with an on/off switch.


class TrackingPlus(TrackingConfig):
    new_count: int = added_field(0)


class OptimizerPlus(OptimizerConfig):
    clip: float | None = added_field(None)


class RegularizerPlus(RegularizerConfig):
    scale: float = added_field(1.0)


class _New(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PruningSchedule(_New):
    steps: int = added_field(0)


class Pruning(_New):
    amount: float = added_field(0)  # an int default of a float field: the dump has 0.0
    schedule: PruningSchedule = added_field(default_factory=PruningSchedule)


class LowRank(_New):
    enabled: bool = added_field(False)
    rank: int = added_field(4)


class RunPlus(RunConfig):
    optimizer: OptimizerPlus = Field(default_factory=OptimizerPlus)
    regularizers: dict[str, RegularizerPlus] = Field(default_factory=dict)
    tracking: TrackingPlus = Field(default_factory=TrackingPlus)
    pruning: Pruning = added_field(default_factory=Pruning)
    lowrank: LowRank = added_field(default_factory=LowRank, switch="enabled")


def test_the_guard_reports_unmarked_fields_of_an_extended_schema() -> None:
    assert unmarked_new_fields(RunPlus) == []

    class TrackingBad(TrackingConfig):
        extra_thing: int = 0

    class PruningBad(_New):
        enabled: bool = added_field(False)
        amount: float = 0.0  # a field of a marked section must be marked too

    class CheckpointPlus(CheckpointConfig):
        keep_last: int = 0  # checkpoint is not hashed: not reported

    class RunBad(RunConfig):
        tracking: TrackingBad = Field(default_factory=TrackingBad)
        checkpoint: CheckpointPlus = Field(default_factory=CheckpointPlus)
        pruning: PruningBad = added_field(default_factory=PruningBad)
        regularizers: dict[str, RegularizerPlus] = Field(default_factory=dict)
        sneaky: int = 0

    assert unmarked_new_fields(RunBad) == ["pruning.amount", "sneaky", "tracking.extra_thing"]
    paths = hashed_field_paths(RunBad)
    assert paths["pruning"] and paths["regularizers.*.scale"] and not paths["tracking"]


def test_added_field_marks_the_json_schema_and_needs_a_default() -> None:
    schema = RunPlus.model_json_schema()
    assert schema["properties"]["pruning"][HASH_ADDED] is True
    assert schema["properties"]["lowrank"]["hash_switch"] == "enabled"
    with pytest.raises(TypeError, match="needs a default"):
        added_field()
    with pytest.raises(TypeError, match="needs a default"):
        added_field(...)


# ---------------------------------------------------------------- the hash


@pytest.mark.parametrize(("data", "init_hash", "old"), OLD_HASHES)
def test_hashes_are_those_of_the_old_code(
    data: dict[str, Any], init_hash: str | None, old: str
) -> None:
    # mutual information on and off included: the old special case, now an added section
    assert config_hash(parse_config(data), init_hash) == old


@pytest.mark.parametrize(("data", "init_hash", "old"), OLD_HASHES)
def test_new_fields_at_their_defaults_leave_the_hash_unchanged(
    data: dict[str, Any], init_hash: str | None, old: str
) -> None:
    assert config_hash(RunPlus.model_validate(data), init_hash) == old


def test_new_fields_given_their_default_values_explicitly_leave_the_hash_unchanged() -> None:
    explicit = RunPlus.model_validate(
        {
            "name": "a",
            "optimizer": {"clip": None},
            "tracking": {"new_count": 0},
            "pruning": {"amount": 0, "schedule": {"steps": 0}},
            "lowrank": {"enabled": False, "rank": 4},
        }
    )
    assert config_hash(explicit) == "dcafa14c0a"


@pytest.mark.parametrize(
    "change",
    [
        {"tracking": {"new_count": 1}},
        {"optimizer": {"clip": 0.5}},
        {"pruning": {"amount": 0.5}},
        {"pruning": {"schedule": {"steps": 3}}},
        {"lowrank": {"enabled": True}},
        {"lowrank": {"enabled": True, "rank": 2}},
        {"regularizers": {"nuclear": {"lam": 0.01, "scale": 2.0}}},
    ],
)
def test_a_new_field_set_to_another_value_changes_the_hash(change: dict[str, Any]) -> None:
    assert config_hash(RunPlus.model_validate({"name": "a", **change})) != "dcafa14c0a"


def test_values_of_new_fields_are_hashed_distinctly() -> None:
    configs = [
        {"pruning": {"amount": 0.5}},
        {"pruning": {"amount": 0.25}},
        {"pruning": {"amount": 0.5, "schedule": {"steps": 3}}},
        {"pruning": {"schedule": {"steps": 3}}},
        {"lowrank": {"enabled": True}},
        {"lowrank": {"enabled": True, "rank": 2}},
    ]
    hashes = {config_hash(RunPlus.model_validate({"name": "a", **c})) for c in configs}
    assert len(hashes) == len(configs)


def test_nested_added_fields_are_left_out_at_any_depth() -> None:
    def payload(**data: Any) -> dict[str, Any]:
        return hash_payload(RunPlus.model_validate({"name": "a", **data}))

    # inside a set (marked) section, its marked fields at their defaults are left out
    assert payload(pruning={"amount": 0.5})["pruning"] == {"amount": 0.5}
    assert payload(pruning={"schedule": {"steps": 3}})["pruning"] == {"schedule": {"steps": 3}}
    # in an existing section and in the sections of a dict
    assert "new_count" not in payload()["tracking"]
    assert payload(tracking={"new_count": 2})["tracking"]["new_count"] == 2
    regs = payload(regularizers={"l1": {"lam": 0.1}, "nuclear": {"lam": 0.2, "scale": 3}})
    assert regs["regularizers"] == {"l1": {"lam": 0.1}, "nuclear": {"lam": 0.2, "scale": 3.0}}
    assert "pruning" not in payload() and "lowrank" not in payload()


def test_a_switched_off_section_is_left_out_whatever_its_settings() -> None:
    off = RunPlus.model_validate({"name": "a", "lowrank": {"enabled": False, "rank": 9}})
    assert config_hash(off) == "dcafa14c0a"
    on = RunPlus.model_validate({"name": "a", "lowrank": {"enabled": True, "rank": 9}})
    assert hash_payload(on)["lowrank"] == {"enabled": True, "rank": 9}


def test_mutual_information_is_an_added_section_switched_by_enabled() -> None:
    info = TrackingConfig.model_fields["mutual_information"].json_schema_extra
    assert info == {HASH_ADDED: True, "hash_switch": "enabled"}
    on = parse_config({"name": "a", "tracking": {"mutual_information": {"enabled": True}}})
    section = hash_payload(on)["tracking"]["mutual_information"]
    assert section == {"enabled": True, "eval_size": 1000, "noise_variance": 0.1}
    assert "mutual_information" not in hash_payload(parse_config({"name": "a"}))["tracking"]
