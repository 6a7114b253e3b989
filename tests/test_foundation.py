import logging
from pathlib import Path

import pytest
import torch

from sltrepro import checkpoint
from sltrepro.config import ConfigError, load_profile
from sltrepro.device import resolve_device
from sltrepro.paths import UnknownPaperError
from sltrepro.steps import fresh_resume_dir, parse_files, run_step


def test_checkpoint_round_trip(tmp_path):
    path = tmp_path / "ckpt" / "last.pt"
    assert checkpoint.load(path) is None
    checkpoint.save(path, {"step": 3, "w": torch.ones(2)})
    state = checkpoint.load(path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.ones(2))
    assert not path.with_suffix(".pt.tmp").exists()


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_load_profile_errors(toy_root):
    assert load_profile("toy", "smoke")["draws"] == 10
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        load_profile("toy", "fast")
    with pytest.raises(UnknownPaperError, match="known papers: toy"):
        load_profile("nosuch", "smoke")


def test_run_step_writes_outputs_and_provenance(toy_root, tmp_path):
    draws = tmp_path / "s" / "draws.json"
    outputs = [[f"draws={draws}"]]
    opts = {"seed_extra": "1"}
    run_step("toy", "sample", profile="smoke", outdir=tmp_path / "s", opts=opts, outputs=outputs)
    assert draws.exists()
    assert '"seed_extra": "1"' in (tmp_path / "s" / "provenance.json").read_text()
    with pytest.raises(ConfigError, match="has no step 'fit'"):
        run_step("toy", "fit", profile="smoke", outdir=tmp_path / "f")


def test_named_inputs_and_outputs(toy_root, tmp_path):
    """Steps read the files their rule names; a returned dict becomes the metrics output."""
    draws = tmp_path / "s" / "draws.json"
    run_step("toy", "sample", profile="smoke", outdir=tmp_path / "s", outputs=[[f"draws={draws}"]])
    figure, metrics = tmp_path / "a" / "draws.png", tmp_path / "a" / "m.json"
    run_step(
        "toy",
        "analyze",
        profile="smoke",
        outdir=tmp_path / "a",
        inputs=[[f"draws={draws}"]],
        outputs=[[f"metrics={metrics}"], [f"figure={figure}"]],
    )
    assert figure.exists() and '"draws_ok": true' in metrics.read_text()
    assert str(draws) in (tmp_path / "a" / "provenance.json").read_text()
    with pytest.raises(ConfigError, match="needs --input draws=PATH from its rule"):
        run_step("toy", "analyze", profile="smoke", outdir=tmp_path / "b")


def test_parse_files_groups_names_and_lists():
    named = parse_files([["h=a", "b"], ["s=c"], ["h=d"]], "--input")
    assert named == {"h": [Path("a"), Path("b"), Path("d")], "s": [Path("c")]}
    for bad in (["h="], ["loose"], ["=a"]):  # every group is named
        with pytest.raises(ConfigError, match="expects name=PATH"):
            parse_files([bad], "--input")


def test_llc_trace_figure_draws_one_panel_per_estimate(tmp_path):
    import numpy as np
    from matplotlib.image import imread

    from sltrepro import plots

    panel = {"title": "a", "trace": np.ones((2, 5)), "estimate": 1.0, "rhat": 1.0,
             "ess_bulk": 9.0, "healthy": True}  # fmt: skip
    one = imread(plots.llc_traces([panel], tmp_path / "one.png"))
    four = imread(plots.llc_traces([panel, {**panel, "reference": 2.0}] * 2, tmp_path / "4.png"))
    assert four.shape[1] == 3 * one.shape[1] and four.shape[0] == 2 * one.shape[0]


def test_resume_state_belongs_to_one_config_and_opts(tmp_path, caplog):
    """An interrupted step resumes its checkpoint; an edited one must not resume another
    configuration's training, so its resume folder is emptied."""
    log, folder = logging.getLogger("test"), tmp_path / "resume"
    (fresh_resume_dir(folder, {"steps": 10}, {"wd": "1"}, log) / "state.pt").write_text("s")
    assert (fresh_resume_dir(folder, {"steps": 10}, {"wd": "1"}, log) / "state.pt").exists()
    fresh_resume_dir(folder, {"steps": 10}, {"wd": "2"}, log)
    assert not (folder / "state.pt").exists() and "starting afresh" in caplog.text
    (folder / "state.pt").write_text("s")
    fresh_resume_dir(folder, {"steps": 20}, {"wd": "2"}, log)
    assert not (folder / "state.pt").exists()
