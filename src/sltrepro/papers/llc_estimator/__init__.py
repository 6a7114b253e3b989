"""Lau et al. 2023 (arXiv 2308.12108): LLC estimates against known learning coefficients."""

from .pipeline import calibrate, collect, dln, make_figures, mala_reference, normal_crossing

STEPS = {
    "normal_crossing": normal_crossing,
    "dln": dln,
    "mala_reference": mala_reference,
    "calibrate": calibrate,
    "collect": collect,
    "figures": make_figures,
}
