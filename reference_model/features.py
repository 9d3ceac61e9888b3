"""Log-mel features that condition the WaveNet: one frame per ``hop_length`` samples."""
from __future__ import annotations

import functools

import librosa
import numpy as np

from reference_model.config import ModelConfig
from wavebench_base.errors import InputError

N_FFT = 1024
FLOOR = 1e-5


@functools.lru_cache(maxsize=8)
def mel_basis(sample_rate: int, n_mels: int, n_fft: int = N_FFT) -> np.ndarray:
    """Slaney-style mel filter bank [n_mels, n_fft // 2 + 1], 0 Hz to Nyquist."""
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0,
                               fmax=sample_rate / 2).astype(np.float32)


def log_mel(audio: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Natural-log mel magnitudes of ``audio``, one frame per hop.

    Frame ``f`` is centred on sample ``f * hop_length`` (reflect padding), so it describes the
    samples it conditions, ``[f * hop, (f + 1) * hop)``, and the ones around them.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)]
        Mono float audio at ``config.sample_rate``.
    config : ModelConfig
        Supplies ``sample_rate``, ``n_mels`` and ``hop_length``.

    Returns
    -------
    np.ndarray [shape=(n_mels, n // hop_length)], float32
        ln(max(mel magnitude, 1e-5)).

    Raises
    ------
    InputError
        For a model that reads another project's features (``mel_norm = "none"``: converted
        from wavenet_vocoder, whose frames come from its own preprocessing and scaler); its
        frames must be given as computed there.

    Examples
    --------
    >>> from reference_model.config import PRESETS
    >>> log_mel(np.zeros(1024, np.float32), PRESETS["reference"].model).shape  # 80 mels, hop 256
    (80, 4)
    """
    if config.mel_norm != "wavebench":
        raise InputError("this model reads mel frames made by its own project's preprocessing "
                         "(converted from wavenet_vocoder), which wavebench does not compute; "
                         "give the frames as a .npy file [n_mels, frames], e.g. generate "
                         "--mel-from FRAMES.npy")
    hop = config.hop_length
    frames = len(audio) // hop
    audio = np.asarray(audio, dtype=np.float32)
    pad_mode = "reflect" if len(audio) > N_FFT // 2 else "constant"
    spec = np.abs(librosa.stft(audio, n_fft=N_FFT, hop_length=hop, win_length=N_FFT,
                               window="hann", center=True, pad_mode=pad_mode))
    mel = mel_basis(config.sample_rate, config.n_mels) @ spec[:, :frames]
    return np.log(np.maximum(mel, FLOOR)).astype(np.float32)
