"""Known degradations for the metric tests, written from their definitions (not the package's
code): white noise at an SNR, 8-bit mu-law (G.711 formula) and a zero-phase low-pass."""
import numpy as np
import scipy.signal


def add_noise(audio, snr_db, seed=0):
    """``audio`` plus seeded white noise at ``snr_db`` dB SNR (power of the whole signal)."""
    noise = np.random.default_rng(seed).standard_normal(audio.size)
    return audio + noise * np.sqrt(np.mean(audio ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))


def mu_law_round_trip(audio, mu=255.0):
    """8-bit mu-law: compress, quantize to 256 codes, expand (the G.711 formula)."""
    x = np.clip(audio, -1, 1)
    codes = np.round((np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) + 1) / 2 * mu)
    y = 2 * codes / mu - 1
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu


def low_pass(audio, rate, cutoff):
    """8th-order Butterworth low-pass, zero-phase, so the two signals' frames stay aligned."""
    return scipy.signal.sosfiltfilt(scipy.signal.butter(8, cutoff, fs=rate, output="sos"), audio)
