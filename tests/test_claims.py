import json

import pandas as pd
import pytest

from sltrepro.claims import Band, check_claims, format_value, load_claims
from sltrepro.cli import main
from sltrepro.config import ConfigError


@pytest.mark.parametrize(
    ("band", "inside", "outside"),
    [
        ({"target": 1.0, "abs_tol": 0.1}, [0.9, 1.1], [0.89, 1.2, None, float("nan")]),
        ({"target": 2.0, "rel_tol": 0.15}, [1.7, 2.3], [1.69, 2.31]),
        ({"min": 0.95}, [0.95, 3.0], [0.94, True]),
        ({"max": 0.1}, [-1.0, 0.1], [0.11]),
        ({"min": -0.1, "max": 0.5}, [-0.1, 0.5], [-0.2, 0.6]),
        ({"equals": True}, [True], [False, None]),
    ],
)
def test_band_contains(band, inside, outside):
    b = Band(**band)
    assert all(b.contains(v) for v in inside)
    assert not any(b.contains(v) for v in outside)


@pytest.mark.parametrize(
    "band", [{"target": 1.0}, {"target": 1.0, "abs_tol": 1, "rel_tol": 1}, {"min": 0, "equals": 1}]
)
def test_malformed_band_is_an_error(band):
    with pytest.raises(ConfigError):
        Band(**band)


def write_claims(path, profiles=("smoke",)):
    path.write_text(
        f"""claims:
  - id: passes
    statement: A value inside its band.
    source: Table 1
    metric: a
    paper_value: 0.5
    band: {{target: 0.5, abs_tol: 0.1}}
    justification: Twice the paper's reported standard deviation.
    profiles: {list(profiles)}
  - id: fails
    statement: A value outside its band.
    source: Fig. 2
    metric: b
    band: {{min: 0.95}}
    justification: The threshold stated in the paper's text.
    profiles: {list(profiles)}
  - id: other_profile
    statement: Applies elsewhere only.
    source: Fig. 3
    metric: c
    band: {{max: 1}}
    justification: Checked only at the paper's scale.
    profiles: [paper]
"""
    )
    return path


def test_check_claims_table(tmp_path):
    claims = load_claims(path=write_claims(tmp_path / "claims.yaml"))
    table = check_claims(claims, {"a": 0.55, "b": 0.5}, "smoke")
    assert table["claim"].tolist() == ["passes", "fails"]
    assert table["status"].tolist() == ["pass", "fail"]
    assert check_claims(claims, {"a": 0.55}, "smoke")["status"].tolist() == ["pass", "fail"]


def test_claims_schema_errors_name_the_key(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text("claims:\n  - id: x\n    statement: s\n")
    with pytest.raises(ConfigError, match=r"claims\.0.*'source' is a required property"):
        load_claims(path=path)


def test_cli_claims_exit_code_and_csv(toy_root, tmp_path, capsys):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"mean": 0.1, "draws_ok": True}))
    out = tmp_path / "claims.csv"
    argv = ["claims", "toy", "--profile", "smoke", "--metrics", str(metrics), "--out", str(out)]
    assert main(argv) == 0
    assert "all 2 claims pass" in capsys.readouterr().out
    metrics.write_text(json.dumps({"mean": 5.0, "draws_ok": True}))
    assert main(argv) == 1
    assert "FAILED: mean_near_zero" in capsys.readouterr().out
    assert pd.read_csv(out)["status"].tolist() == ["fail", "pass"]
    assert main([*argv, "--no-fail"]) == 0


def test_cli_unknown_paper(toy_root, capsys):
    assert main(["claims", "nosuchpaper", "--profile", "smoke"]) == 2
    assert "unknown paper 'nosuchpaper'" in capsys.readouterr().err


def test_values_are_shown_exactly_enough_to_check_the_band_by_eye():
    # a count checked against `== 51717` was shown as 5.172e+04 ("51720")
    assert format_value(51717.0) == format_value("51717") == "51717"
    assert format_value(0.9499) == "0.9499" and format_value(-1.6262459754943848) == "-1.62625"
    assert format_value("True") == "True" and format_value(None) == "—"
