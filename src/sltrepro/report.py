"""Human-readable reports: one ``report.md`` per paper and a ``summary.md`` per profile, and
each paper's part of the HTML report (``snakemake --report``): its claims page and its
section of the front page."""

import csv
import html
import io
import os
from pathlib import Path

import pandas as pd

from .claims import count_passing, format_table, format_value, load_claims, split_kinds
from .config import read_yaml
from .health import diagnostics_table, gates_of
from .paths import paper_dir

NULL_NOTE = (
    "Each claim names its null model (what chance, an untrained model or a trivial "
    "predictor gives); a claim whose null lies inside its band fails."
)
CHECKS_NOTE = (
    "Checks of our own code (counts, closed forms, finite estimates), not of the paper; "
    "they are not counted among the claims."
)


LLC_NOTE = (
    "One row per group of LLC estimates (an estimate, the seeds of a case, or the "
    "checkpoints of a trajectory), with the worst diagnostics over the group: R-hat (max), "
    "bulk and tail ESS (min), the Monte Carlo standard error of the LLC (max), the "
    "equilibration budget nbeta*eps*T (min) and the MALA acceptance (min; exact when read "
    "on the full batch, else a minibatch proxy). An estimate is healthy when it passes the "
    "verdict of sltrepro.llc_diagnostics; a claim gated on an unhealthy group fails, "
    "whatever its number says. Trust only the LLC numbers of healthy rows."
)


def read_claims_csv(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def llc_diagnostics(paper: str, profile: str, metrics: dict | None) -> pd.DataFrame:
    """The LLC diagnostics of ``metrics`` (a paper's metrics.json), with the claims and
    checks of ``profile`` gated on each row; empty without metrics or LLC estimates."""
    if not metrics:
        return diagnostics_table({})
    return diagnostics_table(metrics, gates_of(load_claims(paper), profile))


def paper_report(
    paper: str,
    profile: str,
    claims_csv: str | Path,
    figures: list,
    out: str | Path,
    metrics: dict | None = None,
) -> str:
    """Write ``out`` (markdown): what the paper is, the claims table, the LLC diagnostics of
    ``metrics`` (its metrics.json), then every figure."""
    meta = read_yaml(paper_dir(paper) / "paper.yaml")
    table = read_claims_csv(claims_csv)
    diagnostics = llc_diagnostics(paper, profile, metrics)
    claims, checks = split_kinds(table)
    out = Path(out)
    lines = [
        f"# {meta['title']}",
        "",
        f"{', '.join(meta['authors'])} ({meta['year']}), arXiv {meta['arxiv']}.",
        f"Profile **{profile}**: {count_passing(table)}.",
        "",
        meta.get("reproduces", "").strip(),
        "",
        "## Claims",
        "",
        NULL_NOTE,
        "",
        format_table(claims) if len(claims) else "(no claims apply to this profile)",
        "",
    ]
    for _, row in claims.iterrows():
        lines.append(f"- **{row['claim']}** ({row['source']}): {row['statement']}")
    if len(checks):
        lines += [
            "",
            "## Harness checks",
            "",
            CHECKS_NOTE,
            "",
            format_table(checks),
            "",
        ]
        for _, row in checks.iterrows():
            lines.append(f"- **{row['claim']}** ({row['source']}): {row['statement']}")
    if len(diagnostics):
        shown = diagnostics.assign(estimates=diagnostics["estimates"].map("`{}`".format))
        lines += ["", "## LLC diagnostics", "", LLC_NOTE, "", shown.to_markdown(index=False)]
    lines += [
        "",
        f"Deviations from the original and the reasons for failing claims: "
        f"`papers/{paper}/README.md`. Provenance: `provenance.json` in each result folder.",
        "",
        "## Figures",
        "",
    ]
    for fig in figures:
        rel = os.path.relpath(fig, out.parent)
        lines += [f"### {Path(fig).stem.replace('_', ' ')}", "", f"![{Path(fig).stem}]({rel})", ""]
    text = "\n".join(lines)
    out.write_text(text)
    return text


def summary(profile: str, claims_csvs: dict, out: str | Path) -> str:
    """Write one table of every paper's claims for ``profile``; ``claims_csvs``: paper -> path."""
    frames = []
    for paper, path in sorted(claims_csvs.items()):
        table = read_claims_csv(path)
        table.insert(0, "paper", paper)
        frames.append(table)
    everything = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    lines = [
        f"# Reproduction summary: profile {profile}",
        "",
        f"{count_passing(everything) if len(everything) else '0 of 0 claims pass'} "
        f"across {len(frames)} papers.",
        "",
    ]
    for paper, table in everything.groupby("paper", sort=True) if len(everything) else []:
        claims, checks = split_kinds(table)
        lines += [f"## {paper}", "", f"{count_passing(table)}.", ""]
        if len(claims):
            lines += [format_table(claims), ""]
        if len(checks):
            lines += ["Harness checks:", "", format_table(checks), ""]
        lines += [f"Report: `{paper}/report.md`", ""]
    text = "\n".join(lines)
    Path(out).write_text(text)
    return text


def _status(row) -> str:
    return "✔ pass" if row["status"] == "pass" else "✘ FAIL"


def _html_table(table: pd.DataFrame) -> str:
    columns = ["paper_value", "reproduced", "null", "band"]
    if (table["kind"] == "check").all():
        columns = ["reproduced", "band"]
    head = ["claim", *columns, "result", "reason"]
    rows = ["<tr>" + "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in head)]
    for _, row in table.iterrows():
        cells = [
            f"<code>{html.escape(row['claim'])}</code><br>{html.escape(row['statement'])} "
            f'<span class="source">({html.escape(row["source"])})</span>',
            *(html.escape(format_value(row[c]) if c != "band" else row[c]) for c in columns),
            _status(row),
            html.escape(row["reason"]),
        ]
        rows.append(f'<tr class="{row["status"]}">' + "".join(f"<td>{c}</td>" for c in cells))
    return "<table>\n" + "\n".join(rows) + "\n</table>"


CLAIMS_PAGE_STYLE = """
body { font-family: sans-serif; font-size: 14px; margin: 1.5em; }
table { border-collapse: collapse; width: 100%; }
td:first-child { width: 45%; }
code { word-break: break-all; }
.source { color: #666; }
th, td { border: 1px solid #ccc; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr.pass td:nth-last-child(2) { color: #17702a; font-weight: bold; }
tr.fail td:nth-last-child(2) { color: #b00020; font-weight: bold; }
tr.fail { background: #fff3f3; }
table.llc td:first-child { width: auto; }
table.llc code { white-space: nowrap; word-break: normal; }
table.llc tr td:nth-last-child(2) { color: inherit; font-weight: normal; }
table.llc tr.pass td:nth-last-child(3) { color: #17702a; font-weight: bold; }
table.llc tr.fail td:nth-last-child(3) { color: #b00020; font-weight: bold; }
"""


def _html_diagnostics(table: pd.DataFrame) -> str:
    rows = ["<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)]
    for _, row in table.iterrows():
        status = "pass" if row["healthy"] == "yes" else "fail"
        cells = [f"<code>{html.escape(row['estimates'])}</code>"]
        cells += [html.escape(str(row[c])) for c in table.columns[1:]]
        rows.append(f'<tr class="{status}">' + "".join(f"<td>{c}</td>" for c in cells))
    return '<table class="llc">\n' + "\n".join(rows) + "\n</table>"


def claims_html(
    paper: str,
    profile: str,
    claims_csv: str | Path,
    out: str | Path,
    metrics: dict | None = None,
) -> str:
    """Write ``out``: a standalone HTML page of the paper's claims and, apart, its harness
    checks, with every column of ``claims_csv`` a reader needs (the report's Claims view),
    then the LLC diagnostics of ``metrics`` (its metrics.json)."""
    meta = read_yaml(paper_dir(paper) / "paper.yaml")
    table = read_claims_csv(claims_csv)
    diagnostics = llc_diagnostics(paper, profile, metrics)
    claims, checks = split_kinds(table)
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(paper)}: claims</title><style>{CLAIMS_PAGE_STYLE}</style>",
        "</head><body>",
        f"<h1>{html.escape(meta['title'])}</h1>",
        f"<p>{html.escape(', '.join(meta['authors']))} ({meta['year']}), arXiv "
        f"{html.escape(str(meta['arxiv']))}. Profile <b>{html.escape(profile)}</b>: "
        f"<b>{count_passing(table)}</b>.</p>",
        "<h2>Claims</h2>",
        f"<p>{NULL_NOTE}</p>",
        _html_table(claims) if len(claims) else "<p>(no claims apply to this profile)</p>",
    ]
    if len(checks):
        parts += ["<h2>Harness checks</h2>", f"<p>{CHECKS_NOTE}</p>", _html_table(checks)]
    if len(diagnostics):
        parts += ["<h2>LLC diagnostics</h2>", f"<p>{LLC_NOTE}</p>", _html_diagnostics(diagnostics)]
    parts += [
        f"<p>Deviations from the original and the reasons for failing claims: "
        f"<code>papers/{html.escape(paper)}/README.md</code>.</p>",
        "</body></html>",
    ]
    text = "\n".join(parts) + "\n"
    Path(out).write_text(text)
    return text


def _rst_table(title: str, table: pd.DataFrame) -> list[str]:
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    for _, row in table.iterrows():
        shown = [f"``{row['claim']}``", _status(row), format_value(row["reproduced"])]
        writer.writerow([*shown, row["band"]])
    lines = [
        f".. csv-table:: {title}",
        '   :header: "claim", "result", "reproduced", "band"',
        "",
    ]
    return lines + [f"   {line}" for line in rows.getvalue().splitlines()] + [""]


def _short_authors(authors: list[str]) -> str:
    surnames = [name.split()[-1] for name in authors]
    return surnames[0] + (
        " et al." if len(surnames) > 2 else "".join(f" and {s}" for s in surnames[1:])
    )


FRONT_DIAGNOSTICS = ["LLC", "R-hat", "ESS bulk", "ESS tail", "MCSE", "nbeta*eps*T"]
FRONT_DIAGNOSTICS += ["MALA acceptance", "healthy", "gates"]


def _rst_diagnostics(table: pd.DataFrame) -> list[str]:
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    for _, row in table.iterrows():
        writer.writerow([f"``{row['estimates']}``", *(row[c] for c in FRONT_DIAGNOSTICS)])
    header = ", ".join(f'"{c}"' for c in ["estimates", *FRONT_DIAGNOSTICS])
    lines = [
        ".. csv-table:: LLC diagnostics (worst over each group; the reasons of unhealthy "
        "rows are on the paper's claims page)",
        f"   :header: {header}",
        "",
    ]
    return lines + [f"   {line}" for line in rows.getvalue().splitlines()] + [""]


def front_page_rst(
    paper: str,
    profile: str,
    claims_csv: str | Path,
    out: str | Path,
    metrics: dict | None = None,
) -> str:
    """Write ``out``: the paper's section of the report's front page, reStructuredText that
    workflows/report/workflow.rst includes (its heading underlined ``---`` like that page's
    sections): the pass counts, then the claims and, apart, the checks, then the LLC
    diagnostics of ``metrics`` (its metrics.json)."""
    meta = read_yaml(paper_dir(paper) / "paper.yaml")
    table = read_claims_csv(claims_csv)
    diagnostics = llc_diagnostics(paper, profile, metrics)
    claims, checks = split_kinds(table)
    lines = [paper, "-" * len(paper), ""]
    lines += [f"{_short_authors(meta['authors'])} {meta['year']}: *{meta['title']}*.", ""]
    lines += [f"Profile {profile}: **{count_passing(table)}**.", ""]
    if len(claims):
        lines += _rst_table("Claims", claims)
    else:
        lines += ["(no claims apply to this profile)", ""]
    if len(checks):
        lines += _rst_table("Harness checks (of our code, not of the paper)", checks)
    if len(diagnostics):
        lines += _rst_diagnostics(diagnostics)
    text = "\n".join(lines)
    Path(out).write_text(text)
    return text
