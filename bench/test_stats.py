"""Tests of bench/stats.py (run by scripts/test-python)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stats  # noqa: E402


def test_ratio_is_the_median_of_per_round_ratios_and_the_interval_contains_it() -> None:
    uml = [100.0, 110.0, 90.0, 105.0, 95.0]
    ref = [100.0, 100.0, 100.0, 100.0, 100.0]
    ci = stats.ratio_ci(uml, ref)
    assert ci["ratio"] == pytest.approx(1.0)
    assert ci["lo"] <= ci["ratio"] <= ci["hi"]
    assert ci["lo"] >= 0.9 and ci["hi"] <= 1.1


def test_verdicts() -> None:
    tight_fast = stats.ratio_ci([101.0, 102.0, 100.5, 101.5, 102.5], [100.0] * 5)
    assert stats.verdict(tight_fast, 0.98) == "meets >= 0.98"
    tight_slow = stats.ratio_ci([90.0, 91.0, 90.5, 89.5, 90.2], [100.0] * 5)
    assert stats.verdict(tight_slow, 0.98) == "misses >= 0.98"
    noisy = stats.ratio_ci([70.0, 130.0, 95.0, 120.0, 80.0], [100.0] * 5)
    assert stats.verdict(noisy, 0.98) == "too noisy to conclude"
    cheap = stats.ratio_ci([1.0, 1.02, 0.99], [1.0, 1.0, 1.0], higher_is_better=False)
    assert stats.verdict(cheap, 1.1, higher_is_better=False) == "meets <= 1.1"


def test_too_few_or_unpaired_rounds_are_refused() -> None:
    with pytest.raises(ValueError):
        stats.ratio_ci([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        stats.ratio_ci([1.0, 2.0, 3.0], [1.0, 2.0])
