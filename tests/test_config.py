"""Config and presets: derived receptive field, validation of keys and values, TOML loading."""
import pytest

from reference_model.config import (
    PRESETS,
    ModelConfig,
    config_from_dict,
    get_preset,
    model_config_from_sources,
)
from wavebench_base.errors import InputError


def test_reference_receptive_field_is_3070():
    # (kernel - 1) * sum of dilations + 1 = 3 blocks * (1 + 2 + ... + 512) + 1 = 3 * 1023 + 1
    assert PRESETS["reference"].model.receptive_field == 3070


def test_receptive_field_worked_by_hand_for_kernel_3():
    config = ModelConfig(blocks=2, layers=3, kernel_size=3)
    assert config.receptive_field == 2 * 2 * (1 + 2 + 4) + 1


def test_scenario_presets_follow_the_design():
    assert (PRESETS["music"].model.blocks, PRESETS["music"].model.layers) == (4, 9)
    assert (PRESETS["speech"].model.blocks, PRESETS["speech"].model.layers) == (5, 10)
    assert (PRESETS["ambient"].model.blocks, PRESETS["ambient"].model.layers) == (3, 8)
    assert [PRESETS[n].temperature for n in ("music", "speech", "ambient")] == [0.7, 0.5, 0.8]
    assert [PRESETS[n].seconds for n in ("music", "speech", "ambient")] == [30, 10, 60]


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(InputError, match=r"unknown key\(s\) blokcs; valid keys: blocks, layers"):
        config_from_dict({"blokcs": 3})


def test_unknown_preset():
    with pytest.raises(InputError, match="unknown preset 'huge'; available: tiny, reference"):
        get_preset("huge")


@pytest.mark.parametrize("change, message", [
    ({"blocks": 0}, "blocks must be a positive integer"),
    ({"kernel_size": 1}, "kernel_size must be an integer >= 2"),
    ({"cond": "text"}, "cond must be one of none, mel, speaker, mel\\+speaker"),
    ({"upsample": "linear"}, "upsample must be one of"),
    ({"cond": "speaker"}, "n_speakers is 0"),
    ({"classes": 1}, "classes must be an integer >= 2"),
])
def test_bad_values_are_refused(change, message):
    with pytest.raises(InputError, match=message):
        ModelConfig(**change)


def test_toml_model_table_overrides_preset(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[model]\nblocks = 2\ncond = "mel"\n')
    from reference_model.config import load_toml
    config = model_config_from_sources("reference", load_toml(path), str(path))
    assert (config.blocks, config.layers, config.cond) == (2, 10, "mel")


def test_toml_unknown_key_names_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[model]\nlayer = 2\n")
    from reference_model.config import load_toml
    with pytest.raises(InputError, match=r"c.toml \[model\]: unknown key\(s\) layer"):
        model_config_from_sources("tiny", load_toml(path), str(path))


def test_malformed_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[model\n")
    from reference_model.config import load_toml
    with pytest.raises(InputError, match="bad.toml: not valid TOML"):
        load_toml(path)
