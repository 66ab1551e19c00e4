"""Parsing of plugin specs and number lists from the command line."""

import pytest

from robustkit.errors import RobustkitError
from robustkit.params import parse_float_list, parse_spec, parse_value, typed_params


def test_parse_spec_keeps_text_and_parse_value_infers():
    assert parse_spec("rbf:lr=0.05,epochs=10,reject=true,pca=none") == (
        "rbf",
        {"lr": "0.05", "epochs": "10", "reject": "true", "pca": "none"},
    )
    assert parse_spec("fgsm") == ("fgsm", {})
    assert isinstance(parse_value("10"), int) and isinstance(parse_value("1e-3"), float)
    assert parse_value("28x28") == (28, 28) and parse_value("none") is None


@pytest.mark.parametrize("spec", [":lr=1", "rbf:lr", "rbf:=3"])
def test_bad_spec_is_one_line_error(spec):
    with pytest.raises(RobustkitError, match=r"NAME\[:key=value,\.\.\.\]"):
        parse_spec(spec)


def test_float_lists():
    assert parse_float_list("0.05, 0.1,0.3", "eps", minimum=0) == [0.05, 0.1, 0.3]
    for bad in ("-0.1", "abc", "nan", "inf", ""):
        with pytest.raises(RobustkitError, match="eps"):
            parse_float_list(bad, "eps", minimum=0)


class Example:
    def __init__(
        self,
        flag: bool = False,
        count: int = 1,
        rate: float | None = None,
        shape: tuple[int, ...] | None = None,
        sizes: int | tuple[int, ...] = (100,),
        names: list[str] | None = None,
        mode: str = "a",
        loose=None,
        inferred=2.5,
    ):
        pass


def test_typed_params_follow_annotations_then_defaults():
    text = {
        "flag": "off",
        "count": "7",
        "rate": "none",
        "shape": "28x28",
        "sizes": "300x150",
        "names": "axb",
        "mode": "10",
        "loose": "3x4",
        "inferred": "1",
    }
    assert typed_params(Example, text, "thing") == {
        "flag": False,
        "count": 7,
        "rate": None,
        "shape": (28, 28),
        "sizes": (300, 150),
        "names": ["a", "b"],
        "mode": "10",
        "loose": (3, 4),
        "inferred": 1.0,
    }
    assert typed_params(Example, {"sizes": "64", "count": ["1", "2"]}, "thing") == {
        "sizes": 64,
        "count": [1, 2],  # a sweep: each item converted
    }
    assert typed_params(Example, {"count": 3.5}, "thing") == {"count": 3.5}  # not text


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("flag", "maybe", "thing: flag must be true/false/yes/no/on/off/1/0; got 'maybe'"),
        ("count", "1.5", "thing: count must be an integer; got '1.5'"),
        ("shape", "28by28", "shape must be items separated by 'x' such as 300x150 or none"),
        ("rate", "fast", "rate must be a number or none; got 'fast'"),
    ],
)
def test_typed_params_errors_are_one_line(key, value, message):
    with pytest.raises(RobustkitError) as caught:
        typed_params(Example, {key: value}, "thing")
    assert message in str(caught.value) and "\n" not in str(caught.value)
