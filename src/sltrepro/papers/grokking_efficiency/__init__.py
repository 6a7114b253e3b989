"""Varma et al. 2023: grokking, circuit efficiency, ungrokking and semi-grokking."""

from .figures import figures
from .pipeline import analyze, efficiency, grok, llc, pretrain, semigrok, ungrok

STEPS = {
    "grok": grok,
    "llc": llc,
    "efficiency": efficiency,
    "pretrain": pretrain,
    "ungrok": ungrok,
    "semigrok": semigrok,
    "analyze": analyze,
    "figures": figures,
}
