"""Recipe and Execution: every field has a documented valid range, enforced by one set of checks; TF32 is hashed."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbm_lightning.core import validate
from nbm_lightning.fit import build_parser, main, resolve
from nbm_lightning.records.recipe import Execution, Recipe, build_configs, coerce, field_type, valid_range


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
        validate.check_int("k", 1.5, 1)
    assert isinstance(err.value, ValueError) and str(err.value) == "invalid k 1.5: expected an int >= 1"
    with pytest.raises(validate.InvalidValue, match=r"invalid lr 0: expected a finite number > 0"):
        validate.check_number("lr", 0, 0, low_open=True)
    assert validate.check_number("x", 2, 0, 2) == 2.0
    for bad in (math.nan, math.inf):
        with pytest.raises(validate.InvalidValue, match="finite"):
            validate.check_number("x", bad)


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


# ---------------------------------------------------------------- what is read: YAML files and long values

ROOT = Path(__file__).resolve().parents[1]
NO_WORK = ["--download=false", "--data-dir=/nonexistent", "--wandb-mode=disabled"]  # a value let through fails fast


def alias_bomb(levels: int = 9) -> str:
    """A YAML 'billion laughs' whose last alias, under a known key, expands to 9**levels strings."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines[:-1] + [lines[-1].replace(f"{chr(ord('a') + levels - 1)}:", "epochs:")]) + "\n"


@pytest.mark.parametrize(
    "argv",
    [["-m", "nbm_lightning.fit", "--arch=00000000", "--config={}"],
     ["-m", "nbm_lightning.sweep", "make", "--missing=.", "--out=missing.yaml", "--config-file={}"]],
    ids=["fit", "sweep-make"],
)  # fmt: skip
def test_a_yaml_alias_bomb_is_refused_in_one_line_before_any_value_is_built(argv, tmp_path):
    (tmp_path / "bomb.yaml").write_text(alias_bomb())
    argv = [a.format(tmp_path / "bomb.yaml") for a in argv]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert "anchors and aliases (&, *) are not allowed" in proc.stderr and "bomb.yaml" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.yaml"]


@pytest.mark.parametrize(
    "text, fragment",
    [("epochs: &e 3\n", "anchors and aliases"),
     ("epochs: true\n", "invalid epochs True: expected an int in 1..10000, found a bool"),
     ("lr: [0.1]\n", "invalid lr [0.1]: expected a finite number > 0, found a list"),
     ("epochs:\n", "invalid epochs None: expected an int in 1..10000, found null"),
     ("pipeline: 3\n", "invalid pipeline 3: expected one of tensor, torchvision, found an int"),
     ("epochs: '１２'\n", "invalid epochs '１２': expected an int in 1..10000"),
     ("epochs: " + "[" * 20_000 + "]" * 20_000 + "\n", "holds 20000 '[' and '{'"),
     ("epochs:\n  " + "- " * 20_000 + "x\n", "nested too deeply"),
     ("1: 2\n", "unknown config key(s) 1: allowed are"),
     ("- epochs\n", "must be a mapping of field: value, got list"),
     ("epochs: 3\n  lr: : 4\n", "is not valid YAML: mapping values are not allowed here (line 2, column 5)"),
     (b"epochs: \xff\n", "is not UTF-8 text"),
     ("# padding\n" * 7000, "is over 65,536 bytes")],
    ids=["anchor", "bool-for-int", "list-for-float", "null", "int-for-choice", "fullwidth-digits", "deep",
         "deep-block", "int-key", "list", "bad-yaml", "not-utf8", "too-big"],
)  # fmt: skip
def test_a_bad_config_file_is_one_line_saying_what_was_expected_and_found(text, fragment, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SystemExit) as exc:
        main(["--arch=12012012", f"--config={path}", *NO_WORK])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and fragment in err and "Traceback" not in err, err


def test_error_lines_cut_long_values(tmp_path, capsys):
    message = str(validate.fail("key", "k" * 50_000_000, "a field name"))
    assert len(message) < 300 and message.endswith("(50,000,000 characters): expected a field name")
    assert len(str(validate.fail("x", [["y" * 10**6] * 1000] * 1000, "z"))) < 300  # a container: bounded work too
    assert str(validate.fail("n", 10**5000, "a small int")) == "invalid n <an int of 16,610 bits>: expected a small int"
    path = tmp_path / "long.yaml"
    for text in ("? " + "k" * 60_000 + "\n: 1\n", "lr: " + "9" * 60_000 + "\n", "pipeline: " + "p" * 60_000 + "\n"):
        path.write_text(text)
        with pytest.raises(SystemExit):
            main(["--arch=12012012", f"--config={path}", *NO_WORK])
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and len(err) < 1000, err[:1000]
        assert "(60,000 characters)" in err or "holds a value YAML cannot read" in err, err
    with pytest.raises(SystemExit):
        main(["--arch=12012012", "--lr=" + "x" * 100_000])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 400 and "invalid lr 'xxx" in err
    with pytest.raises(SystemExit):
        main(["--arch=" + "1" * 100_000])  # formatted elsewhere (search_space): the command line still cuts it
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 2200 and "arch" in err


NOT_ASCII = [["--epochs=１２"], ["--seed=１"], ["--seed=²"]]  # fullwidth and superscript digits: int() reads them


@pytest.mark.parametrize("argv", NOT_ASCII, ids=["epochs", "seed", "superscript"])
def test_numbers_take_ascii_digits_only(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--arch=12012012", *argv, *NO_WORK])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and argv[0].split("=")[1] in err and "expected an int" in err
