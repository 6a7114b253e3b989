"""Where the repository's papers and results live."""

import os
from pathlib import Path


class UnknownPaperError(ValueError):
    """A paper name with no folder under papers/."""


def repo_root() -> Path:
    """The checkout this package runs from (override with ``SLTREPRO_ROOT``)."""
    if "SLTREPRO_ROOT" in os.environ:
        return Path(os.environ["SLTREPRO_ROOT"]).resolve()
    return Path(__file__).resolve().parents[2]


def papers_dir() -> Path:
    return repo_root() / "papers"


def known_papers() -> list[str]:
    """Names of the papers this checkout reproduces (folders of ``papers/`` with a paper.yaml)."""
    return sorted(p.parent.name for p in papers_dir().glob("*/paper.yaml"))


def paper_dir(paper: str) -> Path:
    """The folder of one paper, or an UnknownPaperError naming the papers that exist."""
    if paper not in known_papers():
        raise UnknownPaperError(
            f"unknown paper {paper!r}; known papers: {', '.join(known_papers()) or '(none)'}"
        )
    return papers_dir() / paper


def results_dir(profile: str, paper: str | None = None, root: str | Path = "results") -> Path:
    """``<root>/<profile>[/<paper>]``: profiles never overwrite each other."""
    base = Path(root) / profile
    return base / paper if paper else base
