"""Codes: validation, canonicalization, enumeration and parsing."""

import itertools
import subprocess
import sys

import pytest

from nbm_lightning.arch import codes as ss


@pytest.mark.parametrize(
    "code, expected",
    [
        ("10201201", "10210210"),
        ("00102001", "00120010"),
        ("01002010", "01020010"),
        ("12012012", "12012012"),
        ("20000000", "20000000"),
    ],
)
def test_canonical_examples_of_original(code, expected):
    assert ss.canonical(code) == expected


@pytest.mark.parametrize("stage, expected", [("102", "120"), ("001", "010"), ("000", "000"), ("210", "210")])
def test_canonical_stage_examples(stage, expected):
    code = "00" + stage + stage
    assert ss.canonical(code) == "00" + expected + expected


def test_canonical_is_idempotent_and_preserves_op_counts():
    for code in ss.all_codes():
        c = ss.canonical(code)
        assert ss.canonical(c) == c
        for a, b in zip(ss.stages(code), ss.stages(c)):
            assert a[0] == b[0] and sorted(a) == sorted(b)


def test_enumeration_counts_and_order():
    codes = ss.all_codes()
    assert len(codes) == 3**8 == 6561 and len(set(codes)) == 6561
    assert list(codes) == sorted(codes)
    unique = ss.unique_codes()
    assert len(unique) == 9 * 21 * 21 == 3969
    assert list(unique) == sorted(unique) and all(ss.is_canonical(c) for c in unique)


def test_parse_layout():
    spec = ss.parse("12012012")
    assert [layer.stage for layer in spec.layers] == [0, 0, 1, 1, 1, 2, 2, 2]
    assert [layer.stride for layer in spec.layers] == [2, 1, 2, 1, 1, 2, 1, 1]
    assert [layer.out_channels for layer in spec.layers] == [64, 64, 128, 128, 128, 256, 256, 256]
    assert [layer.out_size for layer in spec.layers] == [16, 16, 8, 8, 8, 4, 4, 4]
    assert [layer.op.name for layer in spec.layers][:3] == ["mb_k3_e3", "mb_k5_e6", "identity"]
    assert [layer.residual for layer in spec.layers] == [False, True, False, True, True, False, True, True]
    assert spec.canonical == "12012012" and spec.final_channels == 256
    with pytest.raises(AttributeError):
        spec.layers[0].stride = 1  # frozen


@pytest.mark.parametrize(
    "bad, error, fragments",
    [
        (12012012, TypeError, ["12012012", "int", "leading zeros"]),
        (None, TypeError, ["None", "NoneType"]),
        (["1", "2"], TypeError, ["['1', '2']", "list"]),
        ("1201201", ValueError, ["'1201201'", "8 digits"]),
        ("120120120", ValueError, ["'120120120'", "8 digits"]),
        ("12012013", ValueError, ["'12012013'", "{0, 1, 2}"]),
        ("1201201a", ValueError, ["'1201201a'", "{0, 1, 2}"]),
        ("", ValueError, ["''"]),
        (" 12012012", ValueError, ["' 12012012'"]),
    ],
)
def test_bad_codes_raise_one_line_errors(bad, error, fragments):
    for fn in (ss.validate, ss.canonical, ss.parse):
        with pytest.raises(error) as info:
            fn(bad)
        message = str(info.value)
        assert "\n" not in message
        for fragment in fragments:
            assert fragment in message


def test_search_space_imports_no_torch():
    code = "import sys, nbm_lightning.arch.codes; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_stage_count_matches_formula():
    # first layer free (3 ops), the rest: sequences of non-identities followed by identities.
    def forms(depth):
        followers = sum(2**k for k in range(depth))  # k non-identities (2 ops each) first, then identities
        return 3 * followers

    assert [forms(d) for d in ss.STAGE_DEPTHS] == [9, 21, 21]
    assert len({ss.canonical("".join(p)) for p in itertools.product("012", repeat=8)}) == 9 * 21 * 21
