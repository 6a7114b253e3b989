import pytest
import torch

from sltrepro import checkpoint
from sltrepro.config import ConfigError, load_profile
from sltrepro.device import resolve_device
from sltrepro.paths import UnknownPaperError
from sltrepro.steps import run_step


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
    run_step("toy", "sample", profile="smoke", outdir=tmp_path / "s", opts={"seed_extra": "1"})
    assert (tmp_path / "s" / "draws.json").exists()
    assert '"seed_extra": "1"' in (tmp_path / "s" / "provenance.json").read_text()
    with pytest.raises(ConfigError, match="has no step 'fit'"):
        run_step("toy", "fit", profile="smoke", outdir=tmp_path / "f")
