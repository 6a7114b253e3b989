"""Human-readable reports: one ``report.md`` per paper and a ``summary.md`` per profile."""

import os
from pathlib import Path

import pandas as pd

from .claims import format_table
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
    out = Path(out)
    n_pass = int((table["status"] == "pass").sum())
    lines = [
        f"# {meta['title']}",
        "",
        f"{', '.join(meta['authors'])} ({meta['year']}), arXiv {meta['arxiv']}.",
        f"Profile **{profile}**: {n_pass} of {len(table)} claims pass.",
        "",
        meta.get("reproduces", "").strip(),
        "",
        "## Claims",
        "",
        format_table(table) if len(table) else "(no claims apply to this profile)",
        "",
    ]
    for _, row in table.iterrows():
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
    n_pass = int((everything["status"] == "pass").sum()) if len(everything) else 0
    lines = [
        f"# Reproduction summary: profile {profile}",
        "",
        f"{n_pass} of {len(everything)} claims pass across {len(frames)} papers.",
        "",
    ]
    for paper, table in everything.groupby("paper", sort=True) if len(everything) else []:
        lines += [f"## {paper}", "", format_table(table), "", f"Report: `{paper}/report.md`", ""]
    text = "\n".join(lines)
    Path(out).write_text(text)
    return text
