"""The ``fused`` CPU sampler: the whole cached step compiled with numba, no per-layer Python.

Per step and stream the work is: the embedding row of the previous code; per layer, the past
taps and the current input times one ``[K R, 2D]`` matrix (read from a ring buffer), the gate
``tanh(f) * sigmoid(g)``, the residual product; then the skip sum of all layers as one
``[L D, S]`` product, two end products, and :func:`reference_model.sample.sample_next`'s
inverse CDF. A block of streams advances in lockstep so every weight row loaded from cache
serves all of them; blocks run on numba threads (``prange``). Float32 and float64 are two
compilations of the same code (``cache=True`` keeps them on disk).

The gate uses sigmoid(g) = (1 + tanh(g / 2)) / 2 with the gate weights pre-scaled by 1/2
(exact in binary floating point), so one ``tanh`` serves both halves.
"""
from __future__ import annotations

import copy
import math

import numba
import numpy as np
import torch
from numba import njit, prange

from reference_model.sample import (CHUNK, Inputs, cond_terms, prime_history, speaker_bias,
                                    step_weights)

# Contraction and reassociation let LLVM vectorize the products; no nnan/ninf, so NaN and
# overflow behave as in the reference. The sampling function is compiled without them.
FAST = {"contract", "reassoc", "nsz", "arcp"}
BLOCK = 32  # most streams one thread advances in lockstep (their accumulators stay in L1/L2)


@njit(cache=True, nogil=True)
def _sample_row(logits, u, temperature):
    """Inverse CDF of softmax(logits / T) in float64, as ``sample_next`` (argmax at T = 0)."""
    n = logits.shape[0]
    if temperature == 0.0:
        best = 0
        for c in range(1, n):
            if logits[c] > logits[best]:
                best = c
        return best
    x = np.empty(n)
    top = -np.inf
    for c in range(n):
        x[c] = np.float64(logits[c]) / temperature
        top = max(top, x[c])
    total = 0.0
    for c in range(n):
        total += math.exp(x[c] - top)
        x[c] = total
    target = u * total
    count = 0
    for c in range(n):
        if x[c] <= target:
            count += 1
    return min(count, n - 1)


@njit(cache=True, nogil=True, fastmath=FAST)
def _matmul_acc(x, w, y):
    """y[b] += x[b] @ w for every stream b of a block: x [nb, n_in], w [n_in, n_out], y [nb, n_out]."""
    for i in range(w.shape[0]):
        row = w[i]
        for b in range(x.shape[0]):
            xi = x[b, i]
            yb = y[b]
            for j in range(row.shape[0]):
                yb[j] += xi * row[j]


@njit(cache=True, nogil=True, fastmath=FAST)
def _block_steps(first, last, t0, t1, p, prev, codes, uniforms, temperature, hist, offsets, spans,
                 dil, emb, w_taps, bias, cond, has_cond, w_res, b_res, w_skip, b_skip, w1, b1,
                 w2, b2, half, logits_out, keep):
    """Advance streams first .. last - 1 from position t0 to t1 (see the module docstring)."""
    b0, nb = first, last - first
    n_layers, kr, d2 = w_taps.shape
    r = emb.shape[1]
    k_taps = kr // r
    d = d2 // 2
    dt = emb.dtype
    taps = np.empty((nb, kr), dt)
    h = np.empty((nb, d2), dt)
    z = np.empty((nb, d), dt)
    zall = np.empty((nb, n_layers * d), dt)
    x = np.empty((nb, r), dt)
    s = np.empty((nb, w_skip.shape[1]), dt)
    e = np.empty((nb, w1.shape[1]), dt)
    lg = np.empty((nb, w2.shape[1]), dt)
    for t in range(t0, t1):
        for b in range(nb):
            x[b] = emb[prev[b0 + b]]
        for k in range(n_layers):
            for b in range(nb):
                hb = hist[b0 + b]
                for j in range(k_taps - 1):  # slot j looks K - 1 - j dilations back
                    row = offsets[k] + (t - (k_taps - 1 - j) * dil[k]) % spans[k]
                    taps[b, j * r:(j + 1) * r] = hb[row]
                taps[b, (k_taps - 1) * r:] = x[b]
                hb[offsets[k] + t % spans[k]] = x[b]
                h[b] = bias[b0 + b, k]
                if has_cond:
                    for j in range(d2):
                        h[b, j] += cond[b0 + b, t - t0, k, j]
            _matmul_acc(taps, w_taps[k], h)
            for b in range(nb):
                for j in range(d):
                    z[b, j] = np.tanh(h[b, j]) * (half + half * np.tanh(h[b, d + j]))
                    zall[b, k * d + j] = z[b, j]
                x[b] += b_res[k]
            _matmul_acc(z, w_res[k], x)
        for b in range(nb):
            s[b] = b_skip
            e[b] = b1
            lg[b] = b2
        _matmul_acc(zall, w_skip, s)
        _relu(s)
        _matmul_acc(s, w1, e)
        _relu(e)
        _matmul_acc(e, w2, lg)
        for b in range(nb):
            code = _sample_row(lg[b], uniforms[b0 + b, t - p], temperature)
            codes[b0 + b, t - p] = code
            prev[b0 + b] = code
            if keep:
                logits_out[b0 + b, t - p] = lg[b]


@njit(cache=True, nogil=True, fastmath=FAST)
def _relu(a):
    for b in range(a.shape[0]):
        for j in range(a.shape[1]):
            if a[b, j] < 0:
                a[b, j] = 0


@njit(cache=True, nogil=True, parallel=True)
def _steps_parallel(n_blocks, block, t0, t1, p, prev, codes, uniforms, temperature, hist,
                    offsets, spans, dil, emb, w_taps, bias, cond, has_cond, w_res, b_res, w_skip,
                    b_skip, w1, b1, w2, b2, half, logits_out, keep):
    """Blocks of streams on numba's threads; streams never interact, so no synchronization."""
    batch = codes.shape[0]
    for i in prange(n_blocks):
        _block_steps(i * block, min(batch, (i + 1) * block), t0, t1, p, prev, codes, uniforms,
                     temperature, hist, offsets, spans, dil, emb, w_taps, bias, cond, has_cond,
                     w_res, b_res, w_skip, b_skip, w1, b1, w2, b2, half, logits_out, keep)


def fused_weights(model, dtype: torch.dtype) -> dict:
    """numpy copies of :func:`step_weights`, taps stacked oldest first and gates pre-halved."""
    w = step_weights(model, torch.float64, "cpu")
    k, r = model.config.kernel_size, model.config.residual_channels
    d = model.config.dilation_channels
    # w_old rows hold taps 1, 2, ... dilations back; the kernel wants oldest first, then current
    old = w["w_old"].reshape(len(model.config.dilations), k - 1, r, 2 * d).flip(1)
    taps = torch.cat([old.reshape(-1, (k - 1) * r, 2 * d), w["w_new"]], 1)
    gate_scale = torch.cat([torch.ones(d), torch.full((d,), 0.5)]).double()
    out = {name: t for name, t in w.items()}
    out["w_taps"] = taps * gate_scale
    out["b_conv"] = w["b_conv"] * gate_scale
    if "w_cond" in w:
        layers = len(model.config.dilations)
        scale = gate_scale.repeat(layers)
        out["w_cond"], out["b_cond"] = w["w_cond"] * scale, w["b_cond"] * scale
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    return {name: np.ascontiguousarray(t.numpy(), dtype=np_dtype) for name, t in out.items()
            if name not in ("w_new", "w_old")}, gate_scale


def run_fused(model, inputs: Inputs, *, dtype, device, progress=None, callback=None,
              keep_logits=False, block: int | None = None):
    """Run the compiled cached step; arguments as the other samplers (CPU only)."""
    c = model.config
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    w, gate_scale = fused_weights(model, dtype)
    batch, p, n = inputs.batch, inputs.prime_length, inputs.n_samples
    hist = _initial_history(model, inputs, dtype, np_dtype)
    spans = np.array([(c.kernel_size - 1) * dd for dd in c.dilations], np.int64)
    offsets = np.cumsum(spans) - spans
    dil = np.array(c.dilations, np.int64)
    bias = np.repeat(w["b_conv"][None], batch, 0)
    spk = speaker_bias(model, inputs.speaker, torch.float64, "cpu")
    if spk is not None:
        bias += (spk.permute(1, 0, 2) * gate_scale).numpy().astype(np_dtype)
    prev = (inputs.prime[:, -1].cpu().numpy().astype(np.int64) if p
            else np.full(batch, model.start_code, np.int64))
    codes = np.zeros((batch, n), np.int64)
    logits_out = np.zeros((batch, n if keep_logits else 1, c.classes), np_dtype)
    block = block or min(BLOCK, -(-batch // numba.get_num_threads()))
    n_blocks = -(-batch // block)
    cond_w = {"w_cond": torch.from_numpy(w["w_cond"]).double(),
              "b_cond": torch.from_numpy(w["b_cond"]).double(),
              "b_conv": torch.from_numpy(w["b_conv"])} if c.uses_mel else None
    no_cond = np.zeros((1, 1, 1, 1), np_dtype)
    for t0 in range(p, p + n, CHUNK):
        t1 = min(t0 + CHUNK, p + n)
        cond = no_cond
        if c.uses_mel:  # [chunk, L, batch, 2D] -> [batch, chunk, L, 2D]
            cond_up = inputs.cond_up.detach().cpu().double()
            cond = np.ascontiguousarray(cond_terms(cond_w, cond_up, t0, t1).permute(2, 0, 1, 3)
                                        .numpy().astype(np_dtype))
        _steps_parallel(n_blocks, block, t0, t1, p, prev, codes, inputs.uniforms,
                        inputs.temperature, hist, offsets, spans, dil, w["emb"], w["w_taps"],
                        bias, cond, c.uses_mel, w["w_res"], w["b_res"], w["w_skip"],
                        w["b_skip"], w["w1"], w["b1"], w["w2"], w["b2"], np_dtype(0.5),
                        logits_out, keep_logits)
        if progress is not None:
            progress.update(t1 - t0)
        if callback is not None:
            callback(codes[:, t0 - p:t1 - p].copy(), t0 - p)
    return codes, (logits_out if keep_logits else None)


def _initial_history(model, inputs: Inputs, dtype, np_dtype) -> np.ndarray:
    """Ring buffers [batch, sum of spans, R] filled from the prime (zeros without one)."""
    m = copy.deepcopy(model).to("cpu", dtype).eval()
    p = inputs.prime_length
    rows = []
    for h in prime_history(m, inputs):  # [batch, R, span], entry j = position P - span + j
        span = h.shape[-1]
        rows.append(torch.roll(h.permute(0, 2, 1), shifts=p % span, dims=1))
    return np.ascontiguousarray(torch.cat(rows, 1).numpy(), dtype=np_dtype)
