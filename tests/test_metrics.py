"""The one metrics.json writer: flat, plain JSON values, NaN as null, sorted keys."""

import json
import math
from fractions import Fraction

import numpy as np
import pytest

from sltrepro import metrics, regress
from sltrepro.claims import judge, load_claims


def test_write_converts_and_sorts(tmp_path):
    path = tmp_path / "metrics.json"
    written = metrics.write(
        path,
        {
            "z": np.float32(0.5),
            "a": np.int64(3),
            "frac": Fraction(1, 4),
            "ok": np.bool_(True),
            "nan": float("nan"),
            "inf": np.float64(-np.inf),
            "none": None,
            "zero_d": np.array(2.0),
            "why": "R-hat 1.2 > 1.1",
        },
    )
    text = path.read_text()
    assert text.endswith("}\n") and "NaN" not in text and "Infinity" not in text
    loaded = json.loads(text)
    assert list(loaded) == sorted(loaded) and loaded == written
    assert loaded == {
        "a": 3,
        "frac": 0.25,
        "inf": None,
        "nan": None,
        "none": None,
        "ok": True,
        "why": "R-hat 1.2 > 1.1",
        "z": 0.5,
        "zero_d": 2.0,
    }
    assert type(loaded["a"]) is int and loaded["ok"] is True
    assert text.splitlines()[1].startswith('  "a"')  # two-space indentation


@pytest.mark.parametrize(
    "bad", [{"nested": {"x": 1}}, {"listed": [1, 2]}, {"arr": np.ones(2)}, {"raw": b"x"}]
)
def test_write_refuses_what_is_not_flat(tmp_path, bad):
    path = tmp_path / "metrics.json"
    with pytest.raises(TypeError, match=f"metric '{next(iter(bad))}'"):
        metrics.write(path, bad)
    assert not path.exists()  # nothing half written


def test_write_refuses_non_dicts_and_non_string_keys(tmp_path):
    with pytest.raises(TypeError, match="must be a dict"):
        metrics.write(tmp_path / "m.json", [("a", 1)])
    with pytest.raises(TypeError, match="must be strings"):
        metrics.write(tmp_path / "m.json", {1: 1.0})


def test_null_reads_as_nan_did(tmp_path):
    """regress and claims see a NaN written as null exactly as they saw NaN before."""
    assert regress.flat_metrics({"x": math.nan}) == regress.flat_metrics({"x": None})
    path = tmp_path / "metrics.json"
    metrics.write(path, {"x": math.nan})
    assert regress.flat_metrics(json.loads(path.read_text())) == {"x": None}
    claim = load_claims("saddle_to_saddle")[0]
    for value in (math.nan, None):
        status, _, _ = judge(claim, {claim["metric"]: value})
        assert status == "fail"
