"""Checkpoints: one file, weights_only-loadable, atomic, and clear errors for foreign files."""

import pytest
import torch

from reference_model.checkpoint import FORMAT, load_checkpoint, read_checkpoint, save_checkpoint
from reference_model.config import ModelConfig
from reference_model.model import WaveNet
from wavebench_base.errors import InputError

SMALL = ModelConfig(blocks=1, layers=3, residual_channels=4, dilation_channels=4,
                    skip_channels=8, end_channels=8)


def saved(tmp_path, **fields):
    model = WaveNet(SMALL)
    path = save_checkpoint(tmp_path / "m.pt", config=SMALL, model_state=model.state_dict(),
                           step=7, **fields)
    return model, path


def test_loads_with_weights_only_and_restores_the_weights(tmp_path):
    model, path = saved(tmp_path, optimizer={"lr": 0.1}, rng={"torch": torch.get_rng_state()})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["version"] == 1 and raw["step"] == 7
    assert set(raw["versions"]) >= {"torch", "numpy", "wavebench"}
    loaded, _ = load_checkpoint(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_compile_and_ddp_prefixes_are_stripped(tmp_path):
    model = WaveNet(SMALL)
    wrapped = {f"_orig_mod.module.{k}": v for k, v in model.state_dict().items()}
    path = save_checkpoint(tmp_path / "m.pt", config=SMALL, model_state=wrapped)
    assert all(not k.startswith(("_orig_mod.", "module.")) for k in read_checkpoint(path)["model"])
    load_checkpoint(path)


def test_write_is_atomic_no_temp_left_and_old_file_kept_on_failure(tmp_path):
    _, path = saved(tmp_path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint(path, config=SMALL, model_state=WaveNet(SMALL).state_dict(),
                        bad=lambda: 0)  # a lambda cannot be pickled: torch.save fails mid-write
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_missing_checkpoint(tmp_path):
    with pytest.raises(InputError, match="nope.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_bare_state_dict_is_named(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(WaveNet(SMALL).state_dict(), path)
    with pytest.raises(InputError, match=r"other.pt: not a wavebench checkpoint: found a bare "
                                         r"state_dict with \d+ tensors"):
        load_checkpoint(path)


def test_other_format_is_named(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"format": "someone-else", "weights": {}}, path)
    with pytest.raises(InputError, match="found format 'someone-else'"):
        load_checkpoint(path)


def test_newer_version_is_refused(tmp_path):
    _, path = saved(tmp_path)
    raw = torch.load(path, weights_only=True)
    raw["version"] = 99
    torch.save(raw, path)
    with pytest.raises(InputError, match="format version 99 is not supported"):
        load_checkpoint(path)


def test_pickled_module_is_refused_under_weights_only(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(WaveNet(SMALL), path)
    with pytest.raises(InputError, match="module.pt: not a readable wavebench checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_truncated_or_garbage_file(tmp_path, content):
    _, path = saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if content is None else content)
    with pytest.raises(InputError, match="m.pt: not a readable wavebench checkpoint"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_config(tmp_path):
    _, path = saved(tmp_path)
    raw = torch.load(path, weights_only=True)
    raw["config"]["blocks"] = 2
    torch.save(raw, path)
    with pytest.raises(InputError, match="weights do not match the stored config"):
        load_checkpoint(path)
