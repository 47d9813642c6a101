"""Does a lesson work? The statistics, as pure functions over per-learner score changes.

Method (also explained on the trainer's effectiveness page):

1. For every gap-triggered case of a lesson we take the standard's score for the subject (the
   employee, or the location/team for group rules) in the window *before* and the window *after*
   a reference time, and keep the change ``after - before``. Scores are on 0-100 and come from
   survey answers and audit/monitoring items linked to the standard.
   - Treated cases: the reference time is when the learner completed the lesson.
   - Control cases: the rule's **holdout** — a share of gap-triggered cases (default 10 %)
     deliberately not assigned until the cooldown has passed. Their reference time is the
     trigger time plus the treated group's median trigger → completion delay, so both groups
     are measured over the same stretch after the gap was found.
   A case needs at least ``MIN_POINTS_PER_WINDOW`` data points in each window to count.
2. Gaps are found when a score is unusually low, so scores drift back up on their own
   (regression to the mean). Comparing with the holdout removes that drift: the effect is the
   **difference in mean change**, treated - control (a difference-in-differences).
3. Uncertainty: Welch's two-sample interval at 95 % (unequal variances, Welch-Satterthwaite
   degrees of freedom), so small or noisy groups get wide intervals.
4. Verdict: *insufficient data* until there are at least ``MIN_TREATED`` treated and
   ``MIN_CONTROL`` control cases; then *effective* when the whole interval is above zero,
   otherwise *ineffective* (no improvement beyond noise, the flag trainers act on).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

MIN_TREATED = 20
MIN_CONTROL = 8
MIN_POINTS_PER_WINDOW = 2
CONFIDENCE = 0.95

EFFECTIVE = "effective"
INEFFECTIVE = "ineffective"
INSUFFICIENT = "insufficient data"


@dataclass(frozen=True)
class Effect:
    treated_n: int
    control_n: int
    treated_change: float | None  # mean change of the treated cases, in score points
    control_change: float | None
    difference: float | None  # treated - control
    ci_low: float | None
    ci_high: float | None
    verdict: str

    def as_dict(self) -> dict:
        def r(x):
            return None if x is None else round(x, 2)

        return {
            "treated_n": self.treated_n,
            "control_n": self.control_n,
            "treated_change": r(self.treated_change),
            "control_change": r(self.control_change),
            "difference": r(self.difference),
            "ci_low": r(self.ci_low),
            "ci_high": r(self.ci_high),
            "verdict": self.verdict,
        }


def t_quantile(p: float, df: float) -> float:
    """Student t quantile by the Cornish-Fisher expansion around the normal (Abramowitz & Stegun
    26.7.5); within 0.01 of the exact value for df ≥ 3, which is far below the noise here."""
    z = NormalDist().inv_cdf(p)
    if math.isinf(df):
        return z
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def window_change(before: Sequence[float], after: Sequence[float]) -> float | None:
    """One case's change, or None when either window has too few points to say anything."""
    if len(before) < MIN_POINTS_PER_WINDOW or len(after) < MIN_POINTS_PER_WINDOW:
        return None
    return statistics.fmean(after) - statistics.fmean(before)


def lesson_effect(treated: Sequence[float], control: Sequence[float]) -> Effect:
    """The effect of a lesson from the per-case changes of the treated and holdout groups."""
    nt, nc = len(treated), len(control)
    mt = statistics.fmean(treated) if nt else None
    mc = statistics.fmean(control) if nc else None
    if nt < max(MIN_TREATED, 2) or nc < max(MIN_CONTROL, 2):
        diff = None if mt is None or mc is None else mt - mc
        return Effect(nt, nc, mt, mc, diff, None, None, INSUFFICIENT)
    vt, vc = statistics.variance(treated), statistics.variance(control)
    diff = mt - mc
    se2 = vt / nt + vc / nc
    if se2 == 0:
        # Every case changed by exactly the same amount: no noise to speak of.
        return Effect(nt, nc, mt, mc, diff, diff, diff, EFFECTIVE if diff > 0 else INEFFECTIVE)
    # Welch-Satterthwaite. Variances so small that their squares underflow (subnormal floats)
    # leave nothing to divide: the interval is then the difference itself, as in the normal limit.
    denominator = (vt / nt) ** 2 / (nt - 1) + (vc / nc) ** 2 / (nc - 1)
    df = se2**2 / denominator if denominator and se2**2 else math.inf
    half = t_quantile(1 - (1 - CONFIDENCE) / 2, df) * math.sqrt(se2)
    low, high = diff - half, diff + half
    return Effect(nt, nc, mt, mc, diff, low, high, EFFECTIVE if low > 0 else INEFFECTIVE)
