"""Two example attacks on the ``signal`` modality, written against :mod:`wmbench.api` only.

``additive_noise`` adds white Gaussian noise, the sensor's own kind of damage;
``lowpass`` smooths with a centred moving average, which removes the high
frequencies where a faint mark is easiest to hide.

Both keep the attack contract that ``wmbench check-plugin NAME`` verifies:
deterministic for an equally seeded ``rng`` (``lowpass`` draws nothing at all),
strengths listed weak -> strong, a 1-D ``float64`` array out at the input's length,
and the input never modified.
"""

from __future__ import annotations

import numpy as np

from wmbench.api import attack


def _signal(item: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(item, np.ndarray) or item.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D signal, got {getattr(item, 'shape', type(item).__name__)}")
    return item.astype(np.float64)  # a copy: the input stays as it was


@attack("additive_noise", modality="signal", strengths=[0.05, 0.1, 0.2, 0.5, 1.0],  # weak -> strong
        tags={"family": "noise"})
def additive_noise(item: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise with this standard deviation relative to the signal's own.

    At strength ``s`` the SNR against the input is ``-20 log10(s)`` dB (26 dB at 0.05,
    0 dB at 1.0). One normal draw per sample, whatever the strength, so equally seeded
    generators give the same noise shape at every strength, only scaled.
    """
    signal = _signal(item, "additive_noise")
    relative = float(strength)
    if not relative >= 0.0:
        raise ValueError(f"additive_noise: strength must be a non-negative fraction, not {strength!r}")
    noise = rng.standard_normal(signal.size)
    scale = float(np.std(signal)) if signal.size else 0.0  # a constant signal gets no noise: no scale
    return signal + noise * (relative * scale)


@attack("lowpass", modality="signal", strengths=[3, 5, 9, 17, 33],  # samples averaged: weak -> strong
        tags={"family": "filter"})
def lowpass(item: np.ndarray, strength: int, rng: np.random.Generator) -> np.ndarray:
    """Replace every sample by the mean of a centred window of ``strength`` samples.

    The ends are padded with the first and last value, so the output keeps the input's
    length. An even window leans one sample left.
    """
    signal = _signal(item, "lowpass")
    window = strength
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"lowpass: strength must be a window of at least 1 sample, not {strength!r}")
    if signal.size == 0 or window == 1:
        return signal
    padded = np.pad(signal, (window // 2, (window - 1) // 2), mode="edge")
    return np.convolve(padded, np.full(window, 1.0 / window), mode="valid")
