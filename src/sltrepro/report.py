"""Human-readable reports: one ``report.md`` per paper and a ``summary.md`` per profile."""

import os
from pathlib import Path

import pandas as pd

from .claims import count_passing, format_table, split_kinds
from .config import read_yaml
from .paths import paper_dir


def read_claims_csv(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def paper_report(
    paper: str, profile: str, claims_csv: str | Path, figures: list, out: str | Path
) -> str:
    """Write ``out`` (markdown): what the paper is, the claims table, then every figure."""
    meta = read_yaml(paper_dir(paper) / "paper.yaml")
    table = read_claims_csv(claims_csv)
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
        "Each claim names its null model (what chance, an untrained model or a trivial",
        "predictor gives); a claim whose null lies inside its band fails.",
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
            "Checks of our own code (counts, closed forms, finite estimates), not of the paper;",
            "they are not counted among the claims.",
            "",
            format_table(checks),
            "",
        ]
        for _, row in checks.iterrows():
            lines.append(f"- **{row['claim']}** ({row['source']}): {row['statement']}")
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
