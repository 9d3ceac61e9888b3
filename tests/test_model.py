"""The WaveNet: parameter count, causality, alignment of logits, conditioning."""
import pytest
import torch

from reference_model.config import PRESETS, ModelConfig
from reference_model.model import WaveNet, count_parameters, upsample_factors
from wavebench_base.errors import InputError

SMALL = ModelConfig(blocks=2, layers=4, residual_channels=8, dilation_channels=8,
                    skip_channels=16, end_channels=16, n_mels=6, hop_length=8)


def test_reference_parameter_count_worked_by_hand():
    c = PRESETS["reference"].model
    r, d, s, e, k = c.residual_channels, c.dilation_channels, c.skip_channels, c.end_channels, c.classes
    per_layer = (r * 2 * d * 2 + 2 * d) + (d * r + r) + (d * s + s)  # gated conv, residual, skip
    by_hand = (k * r + r) + 30 * per_layer + (s * e + e) + (e * k + k)
    assert by_hand == 549_728
    assert count_parameters(WaveNet(c)) == 549_728


def test_reference_multiply_adds_per_sample():
    c = PRESETS["reference"].model
    macs = sum(m.weight.numel() for m in WaveNet(c).modules() if isinstance(m, torch.nn.Conv1d))
    assert macs == 538_624  # every weight is used once per generated sample


@pytest.mark.parametrize("cond", ["none", "mel", "speaker", "mel+speaker"])
def test_causality_changing_input_after_t_never_changes_logits_up_to_t(cond):
    torch.manual_seed(0)
    config = SMALL.replace(cond=cond, n_speakers=3)
    model = WaveNet(config).double().eval()
    codes = torch.randint(0, 256, (2, 96))
    mel = torch.randn(2, 6, 12, dtype=torch.float64) if config.uses_mel else None
    speaker = torch.tensor([0, 2]) if config.uses_speaker else None
    base = model(codes, mel, speaker)
    for t in (0, 17, 50, 95):
        changed = codes.clone()
        changed[:, t:] = torch.randint(0, 256, changed[:, t:].shape)
        out = model(changed, mel, speaker)
        # logits[t] predicts codes[t] from codes[:t]: exactly equal up to and including t
        assert torch.equal(out[..., : t + 1], base[..., : t + 1])
        if t < 95:
            assert not torch.equal(out[..., t + 1:], base[..., t + 1:])


def test_receptive_field_is_exactly_what_the_output_sees():
    torch.manual_seed(0)
    model = WaveNet(SMALL).double().eval()
    rf = SMALL.receptive_field
    codes = torch.randint(0, 256, (1, 3 * rf))
    t = 3 * rf - 1
    base = model(codes)[..., t]
    inside, outside = codes.clone(), codes.clone()
    inside[0, t - rf] = (inside[0, t - rf] + 1) % 256  # oldest code still in view
    outside[0, t - rf - 1] = (outside[0, t - rf - 1] + 1) % 256
    assert not torch.equal(model(inside)[..., t], base)
    assert torch.equal(model(outside)[..., t], base)


def test_batch_equals_items_one_at_a_time():
    torch.manual_seed(0)
    model = WaveNet(SMALL.replace(cond="mel")).double().eval()
    codes = torch.randint(0, 256, (3, 64))
    mel = torch.randn(3, 6, 8, dtype=torch.float64)
    whole = model(codes, mel)
    for i in range(3):
        assert torch.allclose(model(codes[i:i + 1], mel[i:i + 1]), whole[i:i + 1], atol=1e-12)


def test_mel_frame_conditions_only_its_own_hop():
    torch.manual_seed(0)
    model = WaveNet(SMALL.replace(cond="mel")).double().eval()
    codes = torch.randint(0, 256, (1, 64))
    mel = torch.randn(1, 6, 8, dtype=torch.float64)
    changed = mel.clone()
    changed[..., 3] += 1.0
    diff = (model(codes, changed) - model(codes, mel)).abs().sum(dim=1)[0]
    assert torch.all(diff[:24] == 0) and torch.all(diff[24:32] > 0)


def test_repeat_upsampling_repeats_normalized_frames():
    model = WaveNet(SMALL.replace(cond="mel", upsample="repeat"))
    # log-mel values (natural log; the floor is ln 1e-5 = -11.5129) are shifted by +4 and
    # divided by 4, worked by hand: -4 -> 0, 0 -> 1, -8 -> -1, 4 -> 2, -11.5 -> -1.875, 2 -> 1.5
    mel = torch.tensor([[-4.0, 0.0, -8.0]] * 5 + [[4.0, -11.5, 2.0]]).unsqueeze(0)  # [1, 6, 3]
    frames = torch.tensor([[0.0, 1.0, -1.0]] * 5 + [[2.0, -1.875, 1.5]])
    expected = torch.stack([frames[:, f] for f in (0, 1, 2) for _ in range(8)], dim=-1)
    got = model.upsample_cond(mel)
    assert got.shape == (1, 6, 24)  # hop 8: each frame repeated for its 8 samples
    assert torch.equal(got[0], expected)  # all exact in binary floating point


@pytest.mark.parametrize("upsample", ["repeat", "transposed"])
def test_training_forward_equals_the_full_forward(upsample):
    """The training path (frames projected then repeated, skips and output on the loss crop
    alone) gives the logits of the plain per-sample path, which the samplers use."""
    torch.manual_seed(0)
    model = WaveNet(SMALL.replace(cond="mel+speaker", n_speakers=2, upsample=upsample)).double().eval()
    codes = torch.randint(0, 256, (2, 64))
    mel = torch.randn(2, 6, 8, dtype=torch.float64)
    speaker = torch.tensor([0, 1])
    full = model.forward_upsampled(codes, model.upsample_cond(mel), speaker)
    assert torch.allclose(model(codes, mel, speaker), full, atol=1e-12)
    cropped = model(codes, mel, speaker, last=24)
    assert cropped.shape == (2, 256, 24)
    assert torch.allclose(cropped, full[..., -24:], atol=1e-12)
    for bad in (0, -3, 65):
        with pytest.raises(InputError, match="last must be in 1..64"):
            model(codes, mel, speaker, last=bad)


def test_upsample_factors_multiply_to_hop():
    for hop in (1, 64, 200, 256, 275, 300):
        factors = upsample_factors(hop)
        product = 1
        for f in factors:
            product *= f
        assert product == hop


def test_missing_or_misshapen_conditioning_is_a_clear_error():
    model = WaveNet(SMALL.replace(cond="mel"))
    codes = torch.randint(0, 256, (1, 64))
    with pytest.raises(InputError, match="mel-conditioned: pass mel frames"):
        model(codes)
    with pytest.raises(InputError, match=r"expected \[batch, 6, 8\]"):
        model(codes, torch.randn(1, 6, 7))
    with pytest.raises(InputError, match="speaker-conditioned"):
        WaveNet(SMALL.replace(cond="speaker", n_speakers=2))(codes)


def test_step_macs_and_weight_traffic_worked_by_hand():
    from reference_model.config import step_macs, step_weight_floats
    c = PRESETS["reference"].model
    # the Conv1d weights of the test above less the one-hot start conv (a lookup, 256 x 32)
    assert step_macs(c) == 538_624 - 256 * 32 == 530_432
    assert step_weight_floats(c) == 530_432 + 32  # plus the looked-up row
    mel = c.replace(cond="mel", n_mels=80)
    assert step_macs(mel) == 530_432 + 30 * 64 * 80
    assert step_weight_floats(mel) == step_weight_floats(c)  # mel terms go per chunk, batched
