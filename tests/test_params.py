"""Parsing of plugin specs and number lists from the command line."""

import pytest

from robustkit.errors import RobustkitError
from robustkit.params import parse_float_list, parse_spec, parse_value


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
