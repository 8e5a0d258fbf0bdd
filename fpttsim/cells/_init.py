"""Initialisers shared by the dense cells."""

from __future__ import annotations

import numpy as np


def orthogonal_with_spectrum(
    rng: np.random.Generator, n: int, r_min: float, r_max: float
) -> np.ndarray:
    """A matrix ``Q diag(s)`` with ``Q`` orthogonal and ``s`` uniform in a range.

    Its singular values are ``s``, so every eigenvalue modulus lies in
    ``[r_min, r_max]`` as well.
    """
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    q = q * np.sign(np.diag(r))  # Haar-distributed, not biased by the QR signs
    return q * rng.uniform(r_min, r_max, size=n)
