"""Exact references shared by the golden-model tests."""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def rn32(fr: Fraction) -> np.float32:
    """Round a rational to the nearest FP32 (ties to even) with integers only (normal range)."""
    if fr == 0:
        return np.float32(0.0)
    neg, fr = fr < 0, abs(fr)
    e = fr.numerator.bit_length() - fr.denominator.bit_length()
    while Fraction(2) ** e > fr:
        e -= 1
    while Fraction(2) ** (e + 1) <= fr:
        e += 1
    sc = fr / Fraction(2) ** (e - 23)
    m = sc.numerator // sc.denominator
    r = sc - m
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and m % 2):
        m += 1
    v = np.float32(np.ldexp(float(m), e - 23))
    return -v if neg else v
