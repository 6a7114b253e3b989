"""Drift detection: a run's metrics against the accepted baseline, within measured noise.

A paper's baseline ``papers/<paper>/baselines/<profile>.csv`` has one row per entry of its
``metrics.json`` (every number and boolean, not only those claims read, so that a boolean
claim is backed by the continuous numbers it was computed from) and one per verdict of its
claims and checks (``verdict:<id>``, see :func:`observed`):

    metric, value, spread, tolerance

``spread`` is the numerical-noise floor of the metric, measured: the range (max - min) of its
value over runs of the same DAG under different floating-point rounding paths. Chaotic
training amplifies a rounding difference into a visible one, and a CPU of another kind
(AVX-512 instead of AVX2, another BLAS kernel) is just another rounding path; so the spread
over the rounding paths one machine offers stands in for the machines it does not.
:func:`rounding_paths` finds them: each ``ATEN_CPU_CAPABILITY`` this CPU can run, with and
without ``MKL_CBWR=COMPATIBLE``, kept when a probe computation rounds differently.

``tolerance = SPREAD_MULTIPLE * spread + FLOOR_RTOL * |value| + FLOOR_ATOL``: a value moves
when ``|now - value| > tolerance``. Booleans compare as 0/1, so a boolean that flipped between
rounding paths is never reported (its continuous backing numbers still are). A metric that is
null in the baseline must stay null. Everything here is plain data in, plain data out; the
command that runs the calibration DAGs is ``sltrepro regress <paper> --calibrate``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .config import ConfigError

SPREAD_MULTIPLE = 5.0
"""Tolerance per unit of measured spread. The range of 4 draws is about 2 standard deviations
of the rounding noise, and a new machine's value differs from the baseline's by up to about
4.5 of them (99.9%, the difference of two draws); 5 ranges leave that a factor of two."""
FLOOR_RTOL = 1e-5
"""For metrics whose value no rounding path moved: about 80 float32 ulps. Non-chaotic
numbers were measured to agree across Intel AVX-512 and AMD AVX2 machines to 1e-6."""
FLOOR_ATOL = 1e-9

BASELINE_COLUMNS = ["metric", "value", "spread", "tolerance"]
CAPABILITIES = ("default", "avx2", "avx512")
_PROBE = (
    "import hashlib, torch\n"
    "torch.manual_seed(0)\n"
    "a, b = torch.randn(257, 301), torch.randn(301, 263)\n"
    "c = torch.tanh(a @ b).sum(1).softmax(0)\n"
    "print(torch.backends.cpu.get_cpu_capability(), hashlib.sha1(c.numpy().tobytes()).hexdigest())"
)


@dataclass(frozen=True)
class RoundingPath:
    """Environment variables that select one floating-point rounding path of torch."""

    name: str
    env: dict


def rounding_paths(python: str = sys.executable) -> list[RoundingPath]:
    """The distinct rounding paths this machine can run, the native one first.

    Each candidate runs a small probe in a subprocess (an unsupported capability dies with an
    illegal instruction there, not here); candidates whose probe rounds like an earlier one
    are dropped.
    """
    candidates = [RoundingPath("native", {})]
    for capability in CAPABILITIES:
        for cbwr in (None, "COMPATIBLE"):
            env = {"ATEN_CPU_CAPABILITY": capability, **({"MKL_CBWR": cbwr} if cbwr else {})}
            candidates.append(RoundingPath(capability + ("+mkl_compatible" if cbwr else ""), env))
    seen, paths = set(), []
    for path in candidates:
        probe = subprocess.run(
            [python, "-c", _PROBE],
            env={**os.environ, **path.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if probe.returncode != 0:
            continue
        digest = probe.stdout.split()[-1]
        if digest not in seen:
            seen.add(digest)
            paths.append(path)
    return paths


def flat_metrics(metrics: dict) -> dict:
    """The comparable entries of a metrics.json: numbers, booleans and nulls (NaN as null)."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or value is None:
            flat[key] = value
        elif isinstance(value, int | float):
            flat[key] = None if math.isnan(value) else value
    return flat


def observed(metrics: dict, claims_table: pd.DataFrame | None = None) -> dict:
    """What a baseline guards of one run: its metrics and, from its claims.csv table, every
    claim's and check's verdict as a boolean ``verdict:<id>`` (True: pass), so that a claim
    accepted as failing at smoke stays an accepted failure and a passing one stays passing."""
    seen = dict(metrics)
    if claims_table is not None:
        for claim, status in zip(claims_table["claim"], claims_table["status"], strict=True):
            seen[f"verdict:{claim}"] = status == "pass"
    return seen


def baseline_from_runs(runs: list[dict], earlier: list[dict] = ()) -> pd.DataFrame:
    """The baseline table of metrics.json dicts from several rounding paths, native first.

    The value is the native run's; the spread is the range over all runs. A metric that is
    null in some runs but not in others gets an infinite spread (nothing to compare).
    ``earlier``: flat metrics of rounding paths an earlier calibration measured (another
    machine's, see :func:`earlier_paths`); each widens the spread of the metrics it has and
    says nothing of those it lacks (they did not exist then).
    """
    native = flat_metrics(runs[0])
    others = [flat_metrics(r) for r in runs[1:]]
    rows = []
    for metric in sorted(native):
        values = [native[metric], *(o.get(metric) for o in others)]
        values += [e[metric] for e in earlier if metric in e]
        if all(v is None for v in values):
            spread = 0.0
        elif any(v is None for v in values):
            spread = math.inf
        else:
            numbers = [float(v) for v in values]
            spread = max(numbers) - min(numbers)
        value = native[metric]
        rows.append(
            {
                "metric": metric,
                "value": _encode(value),
                "spread": spread,
                "tolerance": tolerance(value, spread),
            }
        )
    return pd.DataFrame(rows, columns=BASELINE_COLUMNS)


def earlier_paths(record: dict, baseline: pd.DataFrame, native: dict) -> dict[str, dict]:
    """The per-path values of an earlier calibration (``record``: its calibration.json) to
    keep beside a new one, named ``<its date>/<path>`` (a name that already has a date keeps
    it). Only valid while the code computes what it computed then, so the new native run
    (``native``) must match the earlier ``baseline`` on every metric the two share; a
    ConfigError lists what moved (then measure every machine kind again instead)."""
    shared = set(baseline["metric"]) & set(native)
    moved = compare(
        baseline[baseline["metric"].isin(shared)], {k: v for k, v in native.items() if k in shared}
    )
    if moved:
        raise ConfigError(
            "the earlier calibration's paths cannot be kept: these moved since then: "
            + "; ".join(moved)
        )
    date = str(record["measured_at"])[:10]
    return {
        name if "/" in name else f"{date}/{name}": values
        for name, values in record["values"].items()
    }


def tolerance(value, spread: float) -> float:
    scale = 0.0 if value is None else abs(float(value))
    return SPREAD_MULTIPLE * spread + FLOOR_RTOL * scale + FLOOR_ATOL


def compare(baseline: pd.DataFrame, metrics: dict) -> list[str]:
    """What moved between ``baseline`` and a metrics.json dict (empty: nothing moved)."""
    now = flat_metrics(metrics)
    moved = []
    for row in baseline.itertuples(index=False):
        if row.metric not in now:
            moved.append(f"{row.metric}: in the baseline but not computed now")
            continue
        old, new, tol = _decode(row.value), now[row.metric], float(row.tolerance)
        if old is None or new is None:
            if (old is None) != (new is None):
                moved.append(f"{row.metric}: {old!r} -> {new!r}")
        elif abs(float(new) - float(old)) > tol:
            moved.append(
                f"{row.metric}: {old!r} -> {new!r} (moved {abs(float(new) - float(old)):.3g}, "
                f"tolerance {tol:.3g} = {SPREAD_MULTIPLE:g} x spread {float(row.spread):.3g} "
                f"+ floor)"
            )
    for metric in sorted(set(now) - set(baseline["metric"])):
        moved.append(f"{metric}: new metric, not in the baseline (value {now[metric]!r})")
    return moved


def read_baseline(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no baseline; measure one with --calibrate")
    table = pd.read_csv(path, dtype={"value": str}, keep_default_na=False)
    if list(table.columns) != BASELINE_COLUMNS:
        raise ConfigError(
            f"{path}: expected columns {BASELINE_COLUMNS}, got {list(table.columns)}; "
            "re-measure it with --calibrate"
        )
    return table


def write_baseline(table: pd.DataFrame, path: str | Path, record: dict) -> None:
    """Write the baseline and, beside it, ``<profile>.calibration.json`` with how it was
    measured (``record``: machine, rounding paths, per-path values)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    record = {
        "spread_multiple": SPREAD_MULTIPLE,
        "floor_rtol": FLOOR_RTOL,
        "floor_atol": FLOOR_ATOL,
        **record,
    }
    path.with_suffix(".calibration.json").write_text(
        json.dumps(record, indent=1, sort_keys=True, default=str) + "\n"
    )


def _encode(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _decode(text: str):
    if text == "null":
        return None
    if text in ("true", "false"):
        return text == "true"
    return float(text)
