"""Furman & Lau (2024): LLC estimates of deep linear networks vs Aoyagi's exact lambda."""

from sltrepro.papers.llc_at_scale.figures import draw_all
from sltrepro.papers.llc_at_scale.pipeline import collect, estimate_architecture

STEPS = {"estimate": estimate_architecture, "collect": collect, "figures": draw_all}
