"""Ratios with confidence intervals for the alternated uml-vs-llama.cpp benchmarks.

Each round runs uml and the reference back to back, so one round's ratio (uml / reference)
shares that moment's machine load; rounds differ by far more (±15-20% here) than the two tools
within a round. So the statistic is the median of the per-round ratios, with a percentile
bootstrap confidence interval over rounds (fixed seed: the same samples give the same interval).
"""
import random
import statistics
from typing import Dict, List, Sequence

BOOTSTRAP_RESAMPLES = 10_000


def ratio_ci(uml: Sequence[float], ref: Sequence[float], level: float = 0.95,
             higher_is_better: bool = True) -> Dict[str, float]:
    """Median per-round ratio uml/ref and its bootstrap CI. The ratio is uml/ref for speeds
    (higher is better) and costs (seconds, bytes: lower is better) alike; higher_is_better only
    documents which, for verdict()."""
    if len(uml) != len(ref) or len(uml) < 3:
        raise ValueError("need the same number of rounds (>= 3) for both tools")
    ratios = [u / r for u, r in zip(uml, ref)]
    rng = random.Random(12345)
    boot = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(BOOTSTRAP_RESAMPLES))
    lo = boot[int((1 - level) / 2 * BOOTSTRAP_RESAMPLES)]
    hi = boot[min(BOOTSTRAP_RESAMPLES - 1, int((1 + level) / 2 * BOOTSTRAP_RESAMPLES))]
    return {"ratio": statistics.median(ratios), "lo": lo, "hi": hi,
            "uml": statistics.median(uml), "ref": statistics.median(ref)}


def verdict(ci: Dict[str, float], target: float, higher_is_better: bool = True) -> str:
    """'meets' when the whole interval is on the right side of the target, 'misses' when it is
    wholly on the wrong side, else 'too noisy to conclude' (run more rounds on a quieter machine)."""
    if higher_is_better:
        if ci["lo"] >= target:
            return f"meets >= {target}"
        if ci["hi"] < target:
            return f"misses >= {target}"
    else:
        if ci["hi"] <= target:
            return f"meets <= {target}"
        if ci["lo"] > target:
            return f"misses <= {target}"
    return "too noisy to conclude"


def fmt_ci(ci: Dict[str, float]) -> str:
    return f"{ci['ratio']:.3f} [{ci['lo']:.3f}, {ci['hi']:.3f}]"


def describe_rounds(samples: List[float]) -> str:
    return " / ".join(f"{s:.1f}" for s in samples)
