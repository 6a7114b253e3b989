"""Lau et al. 2023 (arXiv 2308.12108): LLC estimates against known learning coefficients."""

from .pipeline import calibrate, collect, dln, make_figures, normal_crossing

STEPS = {
    "normal_crossing": normal_crossing,
    "dln": dln,
    "calibrate": calibrate,
    "collect": collect,
    "figures": make_figures,
}
