"""Recipe and Execution: every field has a documented valid range, enforced by one set of checks; TF32 is hashed."""

from __future__ import annotations

import dataclasses
import math

import pytest

from nbm_lightning import checks
from nbm_lightning.config import Execution, Recipe, build_configs, coerce, field_type, valid_range
from nbm_lightning.fit import build_parser, main, resolve


def out_of_range(cls: type, name: str) -> list[str]:
    """Command-line values just outside the declared range of a field (and one of the wrong type)."""
    meta, kind = next(f.metadata for f in dataclasses.fields(cls) if f.name == name), field_type(cls, name)
    if meta["choices"]:
        return ["nope"]
    if kind is bool:
        return ["maybe"]
    if meta["path"]:
        return [""]
    if kind is str:
        return []  # free text (a W&B project name is checked non-empty below)
    low, high = meta["low"], meta["high"]
    values = ["abc"]
    if low is not None:
        values.append(str(low) if meta["low_open"] else str(low - 1))
    if high is not None:
        values.append(str(high + 1))
    if kind is float:
        values += ["nan", "inf"]
    return values


FIELDS = [(cls, f.name) for cls in (Recipe, Execution) for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("cls, name", FIELDS, ids=[name for _, name in FIELDS])
def test_every_field_documents_its_range_and_refuses_values_outside_it(cls, name, capsys):
    help_text = " ".join(build_parser().format_help().split())
    assert f"valid: {valid_range(cls, name)}" in help_text
    if cls is Recipe:
        assert out_of_range(cls, name), f"recipe field {name} has no range to test"
    for value in out_of_range(cls, name):
        with pytest.raises(SystemExit) as exc:
            main(["--arch=12012012", f"--{name}={value}"])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and name in err and "Traceback" not in err, (value, err)


def test_values_at_the_bounds_are_accepted():
    for cls, name in FIELDS:
        meta, kind = next(f.metadata for f in dataclasses.fields(cls) if f.name == name), field_type(cls, name)
        for bound in (meta["low"], meta["high"]):
            if kind in (int, float) and bound is not None and not (bound == meta["low"] and meta["low_open"]):
                assert getattr(cls(**{name: kind(bound)}), name) == bound


def test_coerce_reads_the_declared_types():
    assert coerce(Recipe, "lr", "0.5") == 0.5 and coerce(Recipe, "epochs", "3") == 3
    assert coerce(Recipe, "tf32", "yes") is True and coerce(Execution, "pipeline", "tensor") == "tensor"
    assert field_type(Recipe, "epochs") is int and field_type(Recipe, "tf32") is bool
    with pytest.raises(ValueError, match="invalid epochs '2.5': expected an int"):
        coerce(Recipe, "epochs", "2.5")


def test_numbers_are_stored_as_their_declared_type():
    assert Recipe(lr=1).lr == 1.0 and isinstance(Recipe(lr=1).lr, float)
    assert Recipe(lr=1).hash() == Recipe(lr=1.0).hash()


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="nesterov"):
        Recipe(nesterov=True, momentum=0.0)
    assert Recipe(nesterov=True).nesterov


def test_check_errors_are_one_line_and_typed():
    with pytest.raises(TypeError) as err:
        checks.check_int("k", 1.5, 1)
    assert isinstance(err.value, ValueError) and str(err.value) == "invalid k 1.5: expected an int >= 1"
    with pytest.raises(checks.InvalidValue, match=r"invalid lr 0: expected a finite number > 0"):
        checks.check_number("lr", 0, 0, low_open=True)
    assert checks.check_number("x", 2, 0, 2) == 2.0
    for bad in (math.nan, math.inf):
        with pytest.raises(checks.InvalidValue, match="finite"):
            checks.check_number("x", bad)


def test_tf32_is_part_of_the_recipe_hash():
    strict = resolve(build_parser().parse_args(["--arch=12012012"]))
    tf32 = resolve(build_parser().parse_args(["--arch=12012012", "--tf32=true"]))
    assert tf32.recipe.tf32 and not strict.recipe.tf32 and tf32.recipe.hash() != strict.recipe.hash()
    for rounding_only in ("--channels-last=true", "--compile=true", "--sgd-impl=fused"):
        other = resolve(build_parser().parse_args(["--arch=12012012", rounding_only]))
        assert other.recipe.hash() == strict.recipe.hash(), rounding_only


def test_unknown_config_key_is_named():
    with pytest.raises(ValueError, match="learning_rate"):
        build_configs({"learning_rate": 0.1})


def test_seed_out_of_range_exits_2_before_any_work(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--arch=12012012", "--seed=99999999999"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "99999999999" in err and err.count("\n") == 1
