"""The LLC health contract of ``metrics.json``: what a paper writes about its LLC estimates,
what a claim's ``needs_healthy`` gate reads from it, and the report's diagnostics table.

A group of LLC estimates (one estimate, the seeds of one case, or the checkpoints of one
trajectory) is written under a stem ``S`` as the flat metrics ``S + "llc_" + field``:

- ``healthy``: every estimate of the group passed the health verdict of
  :mod:`sltrepro.llc_diagnostics` (the boolean a claim's ``needs_healthy`` names);
- ``health_reasons``: "" when healthy, else how many failed and the reasons of the worst
  (of the one estimate when the group has one);
- the worst diagnostics over the group: ``rhat`` (max), ``ess_bulk`` / ``ess_tail`` (min),
  ``mcse`` (max), ``loss_budget`` = nbeta * eps * T (min), ``mala_acceptance`` (min) and
  ``mala_exact`` (True only when every acceptance was exact, full batch);
- ``lowest`` / ``highest``: the range of the group's LLC estimates; ``estimates`` and
  ``unhealthy``: how many there are and how many failed.

Write them with :func:`health_metrics` from the ``LLCResult.summary_row()`` rows of the group.
"""

import math

import pandas as pd

HEALTHY = "healthy"
REASONS = "health_reasons"
# (metric field, summary_row field, how the group's worst is taken)
_WORST = (
    ("rhat", "rhat", max),
    ("ess_bulk", "ess_bulk", min),
    ("ess_tail", "ess_tail", min),
    ("mcse", "llc_mcse", max),
    ("loss_budget", "loss_budget", min),
    ("mala_acceptance", "mala_acceptance", min),
)
_FIELDS = ("llc_mean", HEALTHY, REASONS, "mala_exact", *(field for _, field, _ in _WORST))
COLUMNS = [
    "estimates",
    "LLC",
    "R-hat",
    "ESS bulk",
    "ESS tail",
    "MCSE",
    "nbeta*eps*T",
    "MALA acceptance",
    "healthy",
    "reasons",
    "gates",
]


def health_metrics(rows, stem: str, labels=None, row_prefix: str = "") -> dict:
    """The flat health metrics of one group of LLC estimates, named ``stem + "llc_" + field``.

    ``rows``: the group's ``LLCResult.summary_row(prefix=row_prefix)`` dicts, or a DataFrame
    of them (a field a paper's table lacks is left out); ``labels``: one name per row for the
    reasons (e.g. "seed 2", "step 300"; default "estimate i").
    """
    rows = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
    # summary_row's naming: a field is prefixed unless it already starts with the prefix
    named = {f: f if f.startswith(row_prefix) else row_prefix + f for f in _FIELDS}
    rows = [{f: r[name] for f, name in named.items() if name in r} for r in rows]
    if not rows:
        raise ValueError(f"{stem}llc_*: no LLC estimates to summarise")
    labels = list(labels) if labels is not None else [f"estimate {i}" for i in range(len(rows))]
    healthy = [bool(r[HEALTHY]) for r in rows]
    out = {f"{stem}llc_{HEALTHY}": all(healthy)}
    bad = [(label, r) for label, r, ok in zip(labels, rows, healthy, strict=True) if not ok]
    reasons = ""
    if bad:
        label, worst = max(bad, key=lambda item: len(_split(item[1].get(REASONS))))
        why = "; ".join(_split(worst.get(REASONS))) or "no reason recorded"
        many = f"{len(bad)} of {len(rows)} unhealthy; worst ({label})"
        reasons = f"{many if len(rows) > 1 else label}: {why}"
    out[f"{stem}llc_{REASONS}"] = reasons
    for name, field, pick in _WORST:
        values = [_finite(r.get(field)) for r in rows]
        values = [v for v in values if v is not None]
        if values:
            out[f"{stem}llc_{name}"] = pick(values)
    if all("mala_exact" in r for r in rows):
        out[f"{stem}llc_mala_exact"] = all(bool(r["mala_exact"]) for r in rows)
    llcs = [v for v in (_finite(r.get("llc_mean")) for r in rows) if v is not None]
    if llcs:
        out[f"{stem}llc_lowest"], out[f"{stem}llc_highest"] = min(llcs), max(llcs)
    out[f"{stem}llc_estimates"] = len(rows)
    out[f"{stem}llc_unhealthy"] = len(bad)
    return out


def reasons_metric(health_metric: str) -> str:
    """The name of the reasons string beside a health boolean: its last "healthy" replaced."""
    head, found, tail = health_metric.rpartition(HEALTHY)
    return head + REASONS + tail if found else health_metric + "_" + REASONS


def unhealthy_reason(health_metric: str, metrics: dict) -> str:
    """How one failed gate reads in a claim's reason: the metric, its value and the reasons."""
    value = metrics.get(health_metric)
    shown = "missing" if value is None else str(value)
    why = metrics.get(reasons_metric(health_metric))
    return f"{health_metric}={shown}" + (f" ({why})" if isinstance(why, str) and why else "")


def diagnostics_table(metrics: dict, gates: dict | None = None) -> pd.DataFrame:
    """One row per group of LLC estimates in ``metrics`` (every ``*llc_healthy`` boolean, and
    every other health boolean a claim names): the worst diagnostics, the verdict, its
    reasons, and ``gates``: the claims gated on it (``gates``: health metric -> claim ids)."""
    gates = gates or {}
    names = [k for k, v in metrics.items() if k.endswith(f"llc_{HEALTHY}") and _is_bool(v)]
    names += [g for g in gates if g not in names and g in metrics]
    rows = []
    for name in sorted(names):
        stem = name[: -len(f"llc_{HEALTHY}")] if name.endswith(f"llc_{HEALTHY}") else None

        def field(f, stem=stem):
            return metrics.get(f"{stem}llc_{f}") if stem is not None else None

        acceptance = field("mala_acceptance")
        if acceptance is not None and field("mala_exact") is not None:
            kind = "exact" if field("mala_exact") else "minibatch proxy"
            acceptance = f"{_num(acceptance)} ({kind})"
        rows.append(
            {
                "estimates": name.removesuffix(f"_{HEALTHY}"),
                "LLC": _range(field("lowest"), field("highest")),
                "R-hat": _num(field("rhat")),
                "ESS bulk": _num(field("ess_bulk")),
                "ESS tail": _num(field("ess_tail")),
                "MCSE": _num(field("mcse")),
                "nbeta*eps*T": _num(field("loss_budget")),
                "MALA acceptance": acceptance if isinstance(acceptance, str) else _num(acceptance),
                "healthy": "yes" if metrics.get(name) is True else "NO",
                "reasons": metrics.get(reasons_metric(name)) or "",
                "gates": ", ".join(gates.get(name, [])),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def gates_of(claims: list[dict], profile: str) -> dict:
    """health metric -> ids of the claims and checks applying to ``profile`` gated on it."""
    gates: dict = {}
    for entry in claims:
        if profile in entry["profiles"]:
            for name in entry.get("needs_healthy", []):
                gates.setdefault(name, []).append(entry["id"])
    return gates


def _split(reasons) -> list[str]:
    """The reasons of one estimate (a table read back from CSV has NaN for "")."""
    return [r for r in reasons.split("; ") if r] if isinstance(reasons, str) else []


def _finite(value):
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _is_bool(value) -> bool:
    return isinstance(value, bool)


def _num(value) -> str:
    value = _finite(value)
    return "—" if value is None else f"{value:.3g}"


def _range(low, high) -> str:
    if _finite(low) is None:
        return "—"
    return _num(low) if low == high else f"{_num(low)} … {_num(high)}"
