"""Check a paper's claims (``papers/<paper>/claims.yaml``) against the metrics it computed.

A band is one of ``{target, abs_tol}``, ``{target, rel_tol}``, ``{min}``, ``{max}``,
``{min, max}`` or ``{equals}``. A claim whose metric is missing or not a finite number fails.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .config import PROFILES, ConfigError, read_yaml, validate_block
from .paths import paper_dir

_NUMBER = {"type": "number"}
CLAIMS_SCHEMA = {
    "type": "object",
    "required": ["claims"],
    "additionalProperties": False,
    "properties": {
        "claims": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "id",
                    "statement",
                    "source",
                    "metric",
                    "band",
                    "justification",
                    "profiles",
                ],
                "additionalProperties": False,
                "properties": {
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
                            "equals": {"type": ["boolean", "number"]},
                        },
                    },
                    "justification": {"type": "string", "minLength": 10},
                    "profiles": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"enum": list(PROFILES)},
                    },
                },
            },
        }
    },
}


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
    """Claims of ``paper`` (or of the file at ``path``), validated, each with a ``Band``."""
    path = Path(path) if path else paper_dir(paper) / "claims.yaml"
    data = read_yaml(path)
    validate_block(data, CLAIMS_SCHEMA, where=str(path))
    ids = [c["id"] for c in data["claims"]]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ConfigError(f"{path}: duplicated claim ids {duplicated}")
    for claim in data["claims"]:
        try:
            claim["band_obj"] = Band(**claim["band"])
        except ConfigError as err:
            raise ConfigError(f"{path}: claim {claim['id']!r}: {err}") from err
    return data["claims"]


def load_metrics(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no metrics yet; run the paper's pipeline first")
    return json.loads(path.read_text())


def check_claims(claims: list[dict], metrics: dict, profile: str) -> pd.DataFrame:
    """One row per claim that applies to ``profile``: values, band and pass/fail."""
    rows = []
    for claim in claims:
        if profile not in claim["profiles"]:
            continue
        value = metrics.get(claim["metric"])
        rows.append(
            {
                "claim": claim["id"],
                "statement": claim["statement"],
                "source": claim["source"],
                "metric": claim["metric"],
                "paper_value": claim.get("paper_value"),
                "reproduced": value,
                "band": claim["band_obj"].describe(),
                "status": "pass" if claim["band_obj"].contains(value) else "fail",
            }
        )
    columns = [
        "claim",
        "statement",
        "source",
        "metric",
        "paper_value",
        "reproduced",
        "band",
        "status",
    ]
    return pd.DataFrame(rows, columns=columns)


def format_table(table: pd.DataFrame) -> str:
    """A compact markdown table of claim, values, band and status."""
    shown = table[["claim", "paper_value", "reproduced", "band", "status"]].copy()
    shown["reproduced"] = shown["reproduced"].map(format_value)
    shown["paper_value"] = shown["paper_value"].map(format_value)
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
