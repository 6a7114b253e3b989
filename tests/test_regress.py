"""Drift detection: tolerances from measured rounding noise, and what counts as a move."""

import json
import math
import platform

import pandas as pd
import pytest
from conftest import run

from sltrepro import regress
from sltrepro.config import ConfigError

RUNS = [
    {"chaotic": 1.00, "steady": 2.0, "flag": True, "count": 7, "absent": None, "label": "x"},
    {"chaotic": 1.02, "steady": 2.0, "flag": True, "count": 7, "absent": None},
    {"chaotic": 0.99, "steady": 2.0, "flag": True, "count": 7, "absent": None},
]


def test_baseline_records_value_of_the_native_run_and_range_over_paths():
    table = regress.baseline_from_runs(RUNS).set_index("metric")
    assert "label" not in table.index  # strings are not metrics
    assert table.loc["chaotic", "value"] == "1.0"
    assert table.loc["chaotic", "spread"] == pytest.approx(0.03)
    assert table.loc["chaotic", "tolerance"] == pytest.approx(
        regress.SPREAD_MULTIPLE * 0.03 + regress.FLOOR_RTOL * 1.0 + regress.FLOOR_ATOL
    )
    assert table.loc["steady", "spread"] == 0.0
    assert table.loc["flag", "value"] == "true" and table.loc["absent", "value"] == "null"


def test_compare_passes_within_the_noise_and_reports_real_moves():
    base = regress.baseline_from_runs(RUNS)
    assert regress.compare(base, RUNS[1]) == []
    assert regress.compare(base, {**RUNS[0], "chaotic": 1.0 + 0.9 * 5 * 0.03}) == []
    moved = regress.compare(base, {**RUNS[0], "chaotic": 1.0 + 1.1 * 5 * 0.03, "count": 8})
    assert [m.split(":")[0] for m in moved] == ["chaotic", "count"]
    # a metric no rounding path moved may move only by the floor (80 float32 ulps)
    assert regress.compare(base, {**RUNS[0], "steady": 2.0 * (1 + 2e-6)}) == []
    assert regress.compare(base, {**RUNS[0], "steady": 2.0 * (1 + 1e-4)}) != []


def test_compare_booleans_nulls_and_missing_or_new_metrics():
    base = regress.baseline_from_runs(RUNS)
    assert regress.compare(base, {**RUNS[0], "flag": False})[0].startswith("flag: True -> False")
    assert regress.compare(base, {**RUNS[0], "absent": 0.5}) == ["absent: None -> 0.5"]
    assert regress.compare(base, {**RUNS[0], "absent": math.nan}) == []
    fewer = {k: v for k, v in RUNS[0].items() if k != "steady"}
    assert regress.compare(base, fewer) == ["steady: in the baseline but not computed now"]
    assert "new metric" in regress.compare(base, {**RUNS[0], "extra": 1.0})[0]


def test_a_boolean_that_flips_between_rounding_paths_is_not_a_detector():
    flipping = [{"flag": True, "backing": 0.50}, {"flag": False, "backing": 0.49}]
    base = regress.baseline_from_runs(flipping)
    assert regress.compare(base, {"flag": False, "backing": 0.50}) == []
    assert regress.compare(base, {"flag": True, "backing": 0.70}) != []


def test_earlier_paths_widen_the_spread_of_what_they_measured_only():
    """Another machine's paths, kept from an earlier calibration: they widen the metrics
    they have, leave a metric added since alone, and are refused once a shared one moved."""
    earlier_base = regress.baseline_from_runs(RUNS)
    record = {"measured_at": "2026-12-02T04:37:23+00:00", "values": {"native": {"chaotic": 1.1}}}
    now = [{**RUNS[0], "added": 3.0}, {**RUNS[1], "added": 3.01}]
    kept = regress.earlier_paths(record, earlier_base, now[0])
    assert kept == {"2026-12-02/native": {"chaotic": 1.1}}
    # a name that already carries its date keeps it when kept again
    assert list(regress.earlier_paths({**record, "values": kept}, earlier_base, now[0])) == [
        "2026-12-02/native"
    ]
    table = regress.baseline_from_runs(now, list(kept.values())).set_index("metric")
    assert table.loc["chaotic", "spread"] == pytest.approx(0.1)  # 1.0 .. 1.1
    assert table.loc["added", "spread"] == pytest.approx(0.01)  # not made infinite
    with pytest.raises(ConfigError, match="chaotic"):
        regress.earlier_paths(record, earlier_base, {**now[0], "chaotic": 2.0})


def test_baseline_round_trip_and_old_format_is_refused(tmp_path):
    path = tmp_path / "smoke.csv"
    regress.write_baseline(regress.baseline_from_runs(RUNS), path, {"paper": "toy"})
    assert regress.compare(regress.read_baseline(path), RUNS[0]) == []
    record = json.loads(path.with_suffix(".calibration.json").read_text())
    assert record["spread_multiple"] == regress.SPREAD_MULTIPLE and record["paper"] == "toy"
    path.write_text("claim,metric,reproduced\na,b,1\n")
    with pytest.raises(ConfigError, match="--calibrate"):
        regress.read_baseline(path)


def test_rounding_paths_are_distinct_and_start_native():
    paths = regress.rounding_paths()
    assert paths[0].name == "native" and paths[0].env == {}
    assert len({p.name for p in paths}) == len(paths)
    if platform.machine() in ("x86_64", "AMD64"):
        # x86-64 torch has scalar and vector kernels and MKL, which round differently
        assert len(paths) >= 2


def test_calibrate_then_regress_on_the_toy_paper(toy_root):
    calibrated = run(["sltrepro", "regress", "toy", "--profile", "smoke", "--calibrate"], toy_root)
    assert calibrated.returncode == 0, calibrated.stdout + calibrated.stderr
    baseline = toy_root / "papers" / "toy" / "baselines" / "smoke.csv"
    record = json.loads(baseline.with_suffix(".calibration.json").read_text())
    assert set(record["values"]) == set(record["rounding_paths"]) and "native" in record["values"]
    assert record["machine"]["cpu_capability"]

    assert run(["snakemake", "-c1", "--config", "profile=smoke"], toy_root).returncode == 0
    same = run(["sltrepro", "regress", "toy", "--profile", "smoke"], toy_root)
    assert same.returncode == 0 and "matches" in same.stdout

    metrics = toy_root / "results" / "smoke" / "toy" / "metrics.json"
    values = json.loads(metrics.read_text())
    metrics.write_text(json.dumps({**values, "mean": values["mean"] + 1e-3}))
    moved = run(["sltrepro", "regress", "toy", "--profile", "smoke"], toy_root)
    assert moved.returncode == 1 and "mean:" in moved.stdout


def test_the_baseline_holds_every_verdict_so_an_accepted_failure_stays_one():
    table = pd.DataFrame({"claim": ["holds", "accepted_fail"], "status": ["pass", "fail"]})
    run = regress.observed({"x": 1.0}, table)
    assert run == {"x": 1.0, "verdict:holds": True, "verdict:accepted_fail": False}
    base = regress.baseline_from_runs([run])
    flipped = regress.observed({"x": 1.0}, table.assign(status=["fail", "fail"]))
    assert regress.compare(base, run) == []
    assert regress.compare(base, flipped)[0].startswith("verdict:holds: True -> False")
