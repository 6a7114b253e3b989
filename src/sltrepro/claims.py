"""Check a paper's claims (``papers/<paper>/claims.yaml``) against the metrics it computed.

``claims.yaml`` has two lists. ``claims`` are the paper's results; each names its null model
(``null_model``: what chance, an untrained model or a trivial predictor gives for the metric,
as a number or as a metric computed beside it), and its band must exclude that null.
``checks`` test our own code (parameter counts, closed forms matching their formula, finite
estimates); they need no null and are counted apart from the claims.

A band is one of ``{target, abs_tol}``, ``{target, rel_tol}``, ``{min}``, ``{max}``,
``{min, max}`` or ``{equals}``. An entry fails, with its ``reason``, when its metric is
missing or not a finite number, when a metric named in ``needs_healthy`` is not True (LLC
estimates, or for a name without "llc" training runs, that have not converged; the reason
names each such metric with the reasons recorded beside it, see :mod:`sltrepro.health`),
when its null model's computed value lies inside the band, or when the value lies outside
it. A ``needs_healthy`` metric that metrics.json does not have, or that is not a boolean,
is a ConfigError: a gate on nothing would pass every claim.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .config import PROFILES, ConfigError, read_yaml, validate_block
from .health import unhealthy_reason
from .paths import paper_dir

_NUMBER = {"type": "number"}
_VALUE = {"type": ["number", "boolean"]}
_ENTRY_REQUIRED = ["id", "statement", "source", "metric", "band", "justification", "profiles"]
_ENTRY_PROPERTIES = {
    "id": {"type": "string", "pattern": "^[a-z0-9_]+$"},
    "statement": {"type": "string"},
    "source": {"type": "string"},
    "metric": {"type": "string"},
    "paper_value": {"type": ["number", "string", "boolean", "null"]},
    "band": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "target": _NUMBER,
            "abs_tol": {"type": "number", "minimum": 0},
            "rel_tol": {"type": "number", "minimum": 0},
            "min": _NUMBER,
            "max": _NUMBER,
            "equals": _VALUE,
        },
    },
    "justification": {"type": "string", "minLength": 10},
    "profiles": {"type": "array", "minItems": 1, "items": {"enum": list(PROFILES)}},
    "needs_healthy": {"type": "array", "minItems": 1, "items": {"type": "string"}},
}
# `null_model` rather than `null`: YAML reads an unquoted `null:` key as None.
_NULL_MODEL = {
    "type": "object",
    "additionalProperties": False,
    "required": ["source"],
    "oneOf": [{"required": ["value"]}, {"required": ["metric"]}],
    "properties": {
        "value": _VALUE,
        "metric": {"type": "string"},
        "source": {"type": "string", "minLength": 3},
    },
}
CLAIMS_SCHEMA = {
    "type": "object",
    "required": ["claims"],
    "additionalProperties": False,
    "properties": {
        "claims": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [*_ENTRY_REQUIRED, "null_model"],
                "additionalProperties": False,
                "properties": {**_ENTRY_PROPERTIES, "null_model": _NULL_MODEL},
            },
        },
        "checks": {
            "type": "array",
            "items": {
                "type": "object",
                "required": _ENTRY_REQUIRED,
                "additionalProperties": False,
                "properties": _ENTRY_PROPERTIES,
            },
        },
    },
}
COLUMNS = [
    "claim",
    "statement",
    "source",
    "metric",
    "paper_value",
    "reproduced",
    "band",
    "status",
    "kind",
    "null",
    "reason",
]


@dataclass(frozen=True)
class Band:
    """The accepted values of a claim's metric."""

    target: float | None = None
    abs_tol: float | None = None
    rel_tol: float | None = None
    min: float | None = None
    max: float | None = None
    equals: bool | float | None = None

    def __post_init__(self):
        tolerances = (self.abs_tol is not None) + (self.rel_tol is not None)
        if (self.target is None) != (tolerances == 0) or tolerances > 1:
            raise ConfigError("a band with 'target' needs exactly one of abs_tol / rel_tol")
        kinds = (self.target is not None) + (self.min is not None or self.max is not None)
        kinds += self.equals is not None
        if kinds != 1:
            raise ConfigError("a band is one of {target, tol}, {min and/or max}, {equals}")

    def contains(self, value) -> bool:
        if self.equals is not None:
            # True == 1 in Python: a boolean never matches a number, nor a number a boolean
            if isinstance(value, bool) != isinstance(self.equals, bool):
                return False
            return value is not None and value == self.equals
        if not _is_number(value):
            return False
        if self.target is not None:
            tol = self.abs_tol if self.abs_tol is not None else self.rel_tol * abs(self.target)
            # the slack only absorbs binary rounding of the band's own decimals
            return abs(value - self.target) <= tol + 1e-12 * max(1.0, abs(self.target))
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        if self.equals is not None:
            return f"== {self.equals}"
        if self.abs_tol is not None:
            return f"{self.target:g} ± {self.abs_tol:g}"
        if self.rel_tol is not None:
            return f"{self.target:g} ± {100 * self.rel_tol:g}%"
        if self.min is not None and self.max is not None:
            return f"[{self.min:g}, {self.max:g}]"
        return f">= {self.min:g}" if self.min is not None else f"<= {self.max:g}"


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def load_claims(paper: str | None = None, path: str | Path | None = None) -> list[dict]:
    """Claims, then checks, of ``paper`` (or of the file at ``path``), validated.

    Each entry gains ``kind`` ("claim" or "check") and ``band_obj`` (a ``Band``). A claim
    whose band contains its own numeric null is a ConfigError: such a claim cannot fail.
    """
    path = Path(path) if path else paper_dir(paper) / "claims.yaml"
    data = read_yaml(path)
    validate_block(data, CLAIMS_SCHEMA, where=str(path))
    entries = [{**c, "kind": "claim"} for c in data["claims"]]
    entries += [{**c, "kind": "check"} for c in data.get("checks", [])]
    ids = [c["id"] for c in entries]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ConfigError(f"{path}: duplicated claim/check ids {duplicated}")
    for entry in entries:
        try:
            entry["band_obj"] = Band(**entry["band"])
        except ConfigError as err:
            raise ConfigError(f"{path}: {entry['kind']} {entry['id']!r}: {err}") from err
        null = entry.get("null_model", {})
        if "value" in null and entry["band_obj"].contains(null["value"]):
            raise ConfigError(
                f"{path}: claim {entry['id']!r}: its band {entry['band_obj'].describe()} "
                f"contains its own null {null['value']!r} ({null['source']}), so it cannot "
                "fail; tighten the band (from measured spread) or fix the claim"
            )
    return entries


def load_metrics(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no metrics yet; run the paper's pipeline first")
    return json.loads(path.read_text())


def judge(entry: dict, metrics: dict) -> tuple[str, str, object]:
    """``(status, reason, null value)`` of one claim or check against ``metrics``.

    ``reason`` is empty for a pass; for a failure it lists every cause found.
    """
    band = entry["band_obj"]
    value = metrics.get(entry["metric"])
    reasons = []
    if value is None:
        reasons.append(f"metric {entry['metric']!r} missing")
    elif not band.contains(value):
        reasons.append(f"{_show(value)} outside {band.describe()}")
    failed = [m for m in entry.get("needs_healthy", []) if metrics.get(m) is not True]
    # a gate is on LLC estimates or, for any other boolean, on the training runs it names
    for label, names in (
        ("LLC estimates", [m for m in failed if "llc" in m]),
        ("training runs", [m for m in failed if "llc" not in m]),
    ):
        if names:
            shown = ", ".join(unhealthy_reason(m, metrics) for m in names)
            reasons.append(f"{label} not converged: {shown}")
    null = entry.get("null_model")
    null_value = None
    if null is not None:
        null_value = null["value"] if "value" in null else metrics.get(null["metric"])
        if null_value is None:
            reasons.append(f"null metric {null['metric']!r} missing")
        elif band.contains(null_value):
            reasons.append(f"null inside band: {null['source']} gives {_show(null_value)}")
    return ("fail" if reasons else "pass"), "; ".join(reasons), null_value


def _check_gates(entry: dict, metrics: dict) -> None:
    where = f"{entry.get('kind', 'claim')} {entry['id']!r}: needs_healthy names"
    for name in entry.get("needs_healthy", []):
        if name not in metrics:
            raise ConfigError(
                f"{where} {name!r}, which "
                "metrics.json does not have (a typo, or the paper does not write it): a gate "
                "on a metric that is never computed cannot be checked"
            )
        if not (metrics[name] is None or isinstance(metrics[name], bool)):
            raise ConfigError(
                f"{where} {name!r} = {metrics[name]!r}, which is not a boolean health verdict"
            )


def _show(value) -> str:
    return "missing" if value is None else format_value(value)


def check_claims(claims: list[dict], metrics: dict, profile: str) -> pd.DataFrame:
    """One row per claim or check that applies to ``profile``: values, band, status, reason.

    Raises ConfigError when an entry's ``needs_healthy`` names a metric that ``metrics``
    lacks or that is neither a boolean nor null.
    """
    rows = []
    for entry in claims:
        if profile not in entry["profiles"]:
            continue
        _check_gates(entry, metrics)
        status, reason, null_value = judge(entry, metrics)
        rows.append(
            {
                "claim": entry["id"],
                "statement": entry["statement"],
                "source": entry["source"],
                "metric": entry["metric"],
                "paper_value": entry.get("paper_value"),
                "reproduced": metrics.get(entry["metric"]),
                "band": entry["band_obj"].describe(),
                "status": status,
                "kind": entry.get("kind", "claim"),
                "null": null_value,
                "reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def split_kinds(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(claims, checks)`` rows of a claims table (a table without ``kind``: all claims)."""
    if "kind" not in table:
        return table, table.iloc[0:0]
    is_check = table["kind"] == "check"
    return table[~is_check], table[is_check]


def count_passing(table: pd.DataFrame) -> str:
    """``"N of M claims pass"`` plus ``"; K of L checks pass"`` when there are checks."""
    claims, checks = split_kinds(table)
    text = f"{int((claims['status'] == 'pass').sum())} of {len(claims)} claims pass"
    if len(checks):
        text += f"; {int((checks['status'] == 'pass').sum())} of {len(checks)} checks pass"
    return text


def format_table(table: pd.DataFrame) -> str:
    """A compact markdown table of claim, values, null, band, status and failure reason."""
    columns = ["claim", "paper_value", "reproduced", "null", "band", "status", "reason"]
    shown = table[[c for c in columns if c in table]].copy()
    if "kind" in table and (table["kind"] == "check").all():
        shown = shown.drop(columns=["paper_value", "null"], errors="ignore")
    for column in ("paper_value", "reproduced", "null"):
        if column in shown:
            shown[column] = shown[column].map(format_value)
    shown["status"] = shown["status"].str.upper()
    return shown.to_markdown(index=False)


def format_value(value) -> str:
    if isinstance(value, str):
        value = _as_number(value) if value else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        # whole numbers in full (a count checked against `== 51717`), others to 6 digits
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"
    return str(value)


def _as_number(value):
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
