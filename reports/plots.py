"""Report figures as PNG bytes: metric distributions, spectrogram pairs and sampler speeds.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas directly, not
through ``pyplot``: no global figure state, no backend selection, safe in worker threads.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reports.table import usable, validate_results
from wavebench_base.errors import InputError

SPEED_COLUMNS = ("device", "sampler", "batch", "samples_per_s")
#: Dynamic range shown in spectrograms; quieter bins are clipped to the floor colour.
TOP_DB = 80.0
_DPI = 100


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def plot_metric_distribution(df: pd.DataFrame, metric: str, *, unit: str = "",
                             higher_is_better: bool | None = None, seed: int = 0) -> bytes:
    """Box plot of one metric per system, with every utterance drawn as a jittered point.

    Parameters
    ----------
    df : pd.DataFrame
        A results table; only rows of ``metric`` with status ``"ok"`` and a finite value are
        drawn.
    metric : str
        The metric to plot.
    unit : str
        Unit for the axis label, e.g. ``"dB"``.
    higher_is_better : bool, optional
        When given, the title says which direction is better.
    seed : int
        Seed of the horizontal jitter, so the figure is reproducible.

    Returns
    -------
    bytes
        A PNG image.

    Raises
    ------
    InputError
        An invalid table, or no usable value of ``metric``.
    """
    table = validate_results(df, "results")
    rows = table[table["metric"].eq(metric) & usable(table)]
    if rows.empty:
        known = ", ".join(dict.fromkeys(table["metric"])) or "none"
        raise InputError(f"no usable values of metric {metric!r} to plot; metrics: {known}")
    systems = list(dict.fromkeys(rows["system"]))
    data = [rows.loc[rows["system"].eq(s), "value"].to_numpy() for s in systems]
    fig = Figure(figsize=(max(4.0, 1.2 * len(systems) + 2.0), 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.boxplot(data, showfliers=False, widths=0.5, medianprops={"color": "black"})
    rng = np.random.default_rng(seed)
    for i, values in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, values.size), values, s=10, alpha=0.6,
                   color=f"C{(i - 1) % 10}", zorder=3)
    ax.set_xticks(range(1, len(systems) + 1), systems, rotation=20 if len(systems) > 4 else 0)
    ax.set_ylabel(f"{metric} ({unit})" if unit else metric)
    direction = "" if higher_is_better is None else \
        (" (higher is better)" if higher_is_better else " (lower is better)")
    ax.set_title(f"{metric} per utterance{direction}")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _check_wave(name: str, wave) -> np.ndarray:
    wave = np.asarray(wave)
    if wave.ndim != 1 or not np.issubdtype(wave.dtype, np.number):
        raise InputError(f"{name} audio must be a 1-D numeric array, got shape {wave.shape} "
                         f"and dtype {wave.dtype}")
    if wave.size < 2:
        raise InputError(f"{name} audio has {wave.size} samples; need at least 2")
    if not np.all(np.isfinite(wave)):
        raise InputError(f"{name} audio has NaN or Inf samples")
    return wave.astype(np.float64)


def _log_spectrogram(wave: np.ndarray, sample_rate: int, n_fft: int):
    """Hann-windowed STFT magnitude in dB, frames at 75 % overlap, no padding.

    Unpadded frames avoid the bright stripes that zero-padded boundary frames paint at both
    ends. (numpy, not scipy.signal, whose import alone costs more than a second.)
    """
    size = min(n_fft, wave.size)
    hop = max(1, size // 4)
    frames = np.lib.stride_tricks.sliding_window_view(wave, size)[::hop]
    window = np.hanning(size + 1)[:size]  # periodic Hann
    magnitude = np.abs(np.fft.rfft(frames * window, axis=1)).T / window.sum()
    freqs = np.fft.rfftfreq(size, d=1.0 / sample_rate)
    times = (np.arange(frames.shape[0]) * hop + size / 2) / sample_rate
    return freqs, times, 20.0 * np.log10(magnitude + 1e-10)


def plot_spectrogram_pair(reference, generated, sample_rate: int, *, title: str = "",
                          n_fft: int = 512) -> bytes:
    """Spectrograms of a reference and a generated clip, one above the other, same colours.

    Parameters
    ----------
    reference, generated : np.ndarray [shape=(n,)], float
        Mono waveforms at ``sample_rate``; lengths may differ.
    sample_rate : int
        Sample rate in Hz.
    title : str
        Figure title, e.g. the utterance and its score.
    n_fft : int
        STFT window length (Hann, 75 % overlap).

    Returns
    -------
    bytes
        A PNG image; both panels share a colour scale of :data:`TOP_DB` dB below the louder
        clip's peak, so a level difference shows.

    Raises
    ------
    InputError
        A waveform that is not 1-D, shorter than 2 samples or not finite, or a rate that is
        not a positive integer.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or sample_rate <= 0:
        raise InputError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    panels = [(label, _log_spectrogram(_check_wave(label, w), sample_rate, n_fft))
              for label, w in (("reference", reference), ("generated", generated))]
    peak = max(float(s[2].max()) for _, s in panels)
    fig = Figure(figsize=(8.0, 5.0), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True, sharey=True)
    for ax, (label, (freqs, times, db)) in zip(axes, panels):
        mesh = ax.pcolormesh(times, freqs / 1000.0, db - peak, shading="auto", cmap="magma",
                             vmin=-TOP_DB, vmax=0.0, rasterized=True)
        ax.set_ylabel("kHz")
        ax.set_title(label, loc="left", fontsize="medium")
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(mesh, ax=list(axes), label="dB re peak")
    if title:
        fig.suptitle(title)
    return _png(fig)


def plot_speed(df: pd.DataFrame) -> bytes:
    """Bar chart of sampling speed: samples/s by batch size, one bar per (device, sampler).

    Parameters
    ----------
    df : pd.DataFrame
        Columns ``device``, ``sampler``, ``batch`` and ``samples_per_s``; with a ``bound``
        column, each bar's bound is marked by a black tick (other columns are ignored). Rows
        with a missing speed (a skipped device) are left out.

    Returns
    -------
    bytes
        A PNG image with a logarithmic y axis.

    Raises
    ------
    InputError
        A missing column, no row with a speed, or a speed that is not positive.
    """
    missing = [c for c in SPEED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"speed table is missing column(s) {', '.join(missing)}; it needs "
                         f"{', '.join(SPEED_COLUMNS)}")
    speed = pd.to_numeric(df["samples_per_s"], errors="coerce")
    rows = df.assign(samples_per_s=speed)[speed.notna()]
    if rows.empty:
        raise InputError("speed table has no row with a samples_per_s value to plot")
    if (rows["samples_per_s"] <= 0).any():
        raise InputError("speed table has samples_per_s <= 0; a log axis needs positive speeds")
    batches = sorted(rows["batch"].unique())
    combos = list(dict.fromkeys(zip(rows["device"].astype(str), rows["sampler"].astype(str))))
    width = 0.8 / len(combos)
    bounds_drawn = False
    fig = Figure(figsize=(max(5.0, 1.6 * len(batches) + 3.0), 3.8), layout="constrained")
    ax = fig.add_subplot()
    for k, (device, sampler) in enumerate(combos):
        mine = rows[rows["device"].astype(str).eq(device) & rows["sampler"].astype(str).eq(sampler)]
        by_batch = mine.groupby("batch")["samples_per_s"].median()
        x = [batches.index(b) + (k - (len(combos) - 1) / 2) * width for b in by_batch.index]
        ax.bar(x, by_batch.to_numpy(), width=width * 0.95, label=f"{device} / {sampler}",
               color=f"C{k % 10}")
        if "bound" in mine.columns:  # the host's bound of each bar, where the table has one
            bound = pd.to_numeric(mine["bound"], errors="coerce").groupby(mine["batch"]).median()
            shown = bound.reindex(by_batch.index).to_numpy()
            ax.scatter(x, shown, marker="_", s=(72 * 5 * width) ** 2 / 4, color="black",
                       linewidths=1.5, zorder=3, label="host bound" if not bounds_drawn else None)
            bounds_drawn = bounds_drawn or bool(np.isfinite(shown).any())
    ax.set_yscale("log")
    ax.set_xticks(range(len(batches)), [str(b) for b in batches])
    ax.set_xlabel("batch (streams)")
    ax.set_ylabel("samples / s")
    ax.set_title("sampling speed (higher is better)")
    ax.grid(axis="y", which="major", alpha=0.35)
    ax.grid(axis="y", which="minor", alpha=0.1)
    ax.legend(fontsize="small", ncols=min(3, len(combos)), loc="upper left",
              bbox_to_anchor=(0.0, -0.18), frameon=False)
    return _png(fig)


TRAINING_COLUMNS = ("run", "seconds", "val_bits")


def plot_training_curve(df: pd.DataFrame) -> bytes:
    """Validation bits per sample against training wall-clock time, one line per run.

    Parameters
    ----------
    df : pd.DataFrame
        Columns ``run``, ``seconds`` and ``val_bits`` (one row per validation; other columns
        are ignored). Rows without a time or a loss are left out.

    Returns
    -------
    bytes
        A PNG image.

    Raises
    ------
    InputError
        A missing column, or no row with both a time and a loss.
    """
    missing = [c for c in TRAINING_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"training table is missing column(s) {', '.join(missing)}; it needs "
                         f"{', '.join(TRAINING_COLUMNS)}")
    seconds = pd.to_numeric(df["seconds"], errors="coerce")
    bits = pd.to_numeric(df["val_bits"], errors="coerce")
    rows = df.assign(seconds=seconds, val_bits=bits)[seconds.notna() & bits.notna()]
    if rows.empty:
        raise InputError("training table has no validation with a time and a loss to plot")
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for k, (run, mine) in enumerate(rows.groupby("run", sort=False)):
        mine = mine.sort_values("seconds")
        ax.plot(mine["seconds"], mine["val_bits"], marker="o", color=f"C{k % 10}",
                label=str(run))
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel("validation bits / sample")
    ax.set_title("training curve (lower is better)")
    ax.grid(alpha=0.35)
    if rows["run"].nunique() > 1:
        ax.legend(fontsize="small", frameon=False)
    return _png(fig)
