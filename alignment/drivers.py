"""Driver analysis: which service standards (and the survey items behind them) most explain NPS,
and — where business metrics are imported — retention and sales; and what a one-point
improvement is worth. An analysis job, never a dashboard read: a named Celery task
(alignment/driver_tasks.py: nightly from beat, and on demand from the page or the API) reads raw
answers over a bounded period and stores :class:`DriverAnalysis` snapshots that the page reads.

NPS (respondent level)
----------------------
For the responses in the period (the organization's or one location's) that answered the NPS
question and at least one question linked to a standard:

- the outcome is the respondent's likelihood to recommend (0-10; the mean if a survey asks twice);
- each standard's score is the mean of the respondent's answers linked to it, on 0-100 (the same
  scale conversion as the learning gap rules and the rollup: CSAT (x-1)/4, CES (x-1)/6, FCR yes
  100 / no 0, rating by its own scale); NPS answers are never predictors, even when linked to a
  standard, since they are the outcome;
- reading is capped at the ``MAX_RESPONSES`` (200,000) most recent NPS answers of the period —
  one per response in every survey — so the job's memory and time are bounded whatever the
  history; when the cap bites the snapshot says from which date the data was used.

Respondents answer different subsets of standards (each survey links its own), so correlations
are **pairwise-complete**: each pair of variables uses the respondents who answered both. A pair
answered together by fewer than ``MIN_PAIR_N`` respondents is taken as uncorrelated and noted
(their shared effect cannot be separated), and the matrix is projected back to a valid
correlation matrix when pairwise estimates make it indefinite.

On that matrix:

- **effect** = the standardized multiple-regression coefficient β (OLS of the 0-10 score on all
  standards at once): the change in the score, in standard deviations, per standard deviation
  of the standard with the others held fixed;
- **importance** = Johnson's (2000) relative weight, as a share of the explained variance: R² is
  split among correlated predictors by regressing on their closest orthogonal counterparts; the
  shares add up to 100 % and, unlike β, do not flip sign or vanish under collinearity, so the
  ranking uses them;
- **per point** = the change in NPS points per one point (0-100) on the standard, from the same
  model fitted to the respondent-level NPS coding (promoter +100, passive 0, detractor -100, whose
  mean is the NPS);
- **R²** of the 0-10 model, and **n** per standard (respondents who answered it and the NPS
  question);
- 95 % intervals are percentile intervals of ``BOOTSTRAP`` (200) resamples of respondents (the
  whole procedure re-run on each resample, seeded, so reruns give the same figures);
- each standard's items (survey questions by key) are listed with their own correlation with the
  0-10 score, its 95 % interval (Fisher's z) and n — which question carries the standard.

Guards: fewer than ``MIN_RESPONDENTS`` respondents → a refusal naming the count, never a
number; standards answered by fewer than ``MIN_STANDARD_N`` respondents, or with no variation,
are left out and noted; at most ``MAX_STANDARDS`` (the most answered) enter the model. Two
standards correlating at ≥ ``NEAR_DUPLICATE_R`` measure the same thing: the less answered is
dropped and noted. If the remaining correlations still make the model ill-conditioned (condition
index above ``MAX_CONDITION_INDEX``), coefficients are ridge-regularized just enough to bring it
to that bound, and noted.

Retention and sales (location-period level)
-------------------------------------------
Business metrics are per location and period, so these outcomes are regressed across
location-periods (``BUSINESS_WINDOW_DAYS`` back) on the locations' standard scores of the same
period from the rollup (mean of every 0-100 point on the standard: customer feedback, mystery
shopping and monitoring), with **location and period fixed effects** for the organization: store
size and season are removed and the estimate rests on stores' scores moving together with their
own results. One location alone is a time series of its own periods. It runs only with at least
``MIN_LOCATION_PERIODS`` (30) complete location-periods and ``OBS_PER_PREDICTOR`` (10) per standard
in the model (fewer standards enter when data is short); otherwise the snapshot says "not
enough data" with the count. Intervals resample whole locations (cluster bootstrap), since a
store's months are not independent.

Value of a one-point improvement
--------------------------------
Where sales or retention figures exist: the change in the outcome per location and period per
one NPS point (the same fixed-effects regression with the period's NPS, from rollup counts, as
the one predictor; location-periods with fewer than ``MIN_NPS_RESPONSES`` responses are left
out), and per one point on each standard — directly from the retention/sales model, and for the
NPS analysis chained (NPS points per standard point x value per NPS point, intervals from the
paired bootstrap draws). These are associations in observational data, linear and meant for
small changes: the snapshot carries those caveats.

Snapshot layout
---------------
``DriverAnalysis.drivers``: ranked ``[{rank, standard_id, standard, code, effect, low, high,
importance, importance_low, importance_high, per_point, per_point_low, per_point_high,
per_point_unit, n, mean, items}]``. ``DriverAnalysis.value_per_point``: ``{status: "ok" |
"not_enough_data", message, notes: [...], caveats: [...], values: [{outcome, unit, basis,
per_nps_point: {value, low, high, n}, per_standard: [{standard_id, standard, value, low, high}]}]}``.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from alignment.models import BusinessMetric, DriverAnalysis, Measure, PeriodKind, Rollup
from cem.models import Location, Organization, Standard
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write
from feedback.models import Answer, Question, QuestionType
from feedback.selectors import GAP_SCALES, GAP_TYPES

Outcome = DriverAnalysis.Outcome

MIN_RESPONDENTS = 100
MIN_STANDARD_N = 30
MIN_PAIR_N = 30
MAX_STANDARDS = 12
MAX_RESPONSES = 200_000
WINDOW_DAYS = 180
MAX_WINDOW_DAYS = 730
BUSINESS_WINDOW_DAYS = 365
MIN_LOCATION_PERIODS = 30
OBS_PER_PREDICTOR = 10
MIN_POINTS_PER_CELL = 5
MIN_NPS_RESPONSES = 10
PANEL_COVERAGE = 0.8
BOOTSTRAP = 200
CONFIDENCE = 0.95
NEAR_DUPLICATE_R = 0.95
MAX_CONDITION_INDEX = 30.0
KEEP_DAYS = 90
_EIG_FLOOR = 1e-6

BUSINESS_OUTCOMES = (Outcome.SALES, Outcome.RETENTION)
STANDARD_MEASURES = (Measure.STD_FEEDBACK, Measure.STD_AUDIT, Measure.STD_MONITORING)
UNITS = {
    Outcome.SALES: "sales per location per {period}",
    Outcome.RETENTION: "percentage points of retention",
}
NPS_METHOD = (
    "Respondent-level OLS of likelihood to recommend on standardized standard scores (pairwise "
    "correlations); Johnson's relative weights; 200-resample bootstrap 95 % intervals"
)
PANEL_METHOD = (
    "Location-period OLS with location and period fixed effects on the standards' 0-100 scores; "
    "Johnson's relative weights; location-cluster bootstrap 95 % intervals"
)
SERIES_METHOD = (
    "OLS across the location's periods on the standards' 0-100 scores; Johnson's relative weights; "
    "bootstrap 95 % intervals"
)
CAVEATS = [
    "An association in observational data, not proof that improving the standard causes the change.",
    "Linear: meant for small improvements around today's scores.",
]


# --- statistics (pure) ---------------------------------------------------------------------------


class NotEnoughData(Exception):
    def __init__(self, message: str, n: int, notes: list[str] | None = None):
        super().__init__(message)
        self.message, self.n, self.notes = message, n, notes or []


@dataclass
class Design:
    """Rows = respondents or location-periods. ``outcomes`` (n x m) and ``predictors`` (n x p) may
    hold NaN (not answered); ``clusters`` groups rows for the bootstrap (None: each row alone)."""

    outcomes: np.ndarray
    predictors: np.ndarray
    keys: list  # one per predictor column (standard ids)
    names: list  # how notes name them
    clusters: np.ndarray | None = None


@dataclass
class Fit:
    kept: list  # keys of the predictors in the model, in column order
    n: int
    n_per: np.ndarray
    mean: np.ndarray
    r2: float
    beta: np.ndarray  # standardized, of outcome 0
    weight: np.ndarray  # relative weights of outcome 0 (sum = R² of the orthogonalized fit)
    per_point: np.ndarray  # unstandardized (outcome units per predictor unit), one row per outcome
    draws: dict = field(default_factory=dict)  # bootstrap draws: beta, share, per_point
    notes: list = field(default_factory=list)
    ridge: float = 0.0


def _moments(values: np.ndarray, weights: np.ndarray):
    """Pairwise-complete weighted counts, means, SDs and correlations of the columns of ``values``.

    Sums over the rows where *both* columns of a pair are present come out of four matrix
    products, so a bootstrap replicate costs a few BLAS calls whatever the number of rows.
    """
    present = ~np.isnan(values)
    z = np.where(present, values, 0.0)
    m = present * weights[:, None]
    count = present.T.astype(float) @ m
    s = z.T @ m  # s[j, k] = Σ w z_j over rows with j and k present
    q = (z * z).T @ m
    p = z.T @ (z * weights[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = p - s * s.T / count
        var = q - s * s / count
        corr = cov / np.sqrt(var * var.T)
        diag_n = np.diag(count)
        mean = np.diag(s) / diag_n
        sd = np.sqrt(np.clip(np.diag(var), 0, None) / np.clip(diag_n - 1, 1, None))
    np.fill_diagonal(corr, 1.0)
    return count, mean, sd, corr


def _valid_correlation(corr: np.ndarray) -> tuple[np.ndarray, bool]:
    """The nearest-by-eigenvalue-clipping valid correlation matrix (pairwise matrices may be indefinite)."""
    corr = np.nan_to_num((corr + corr.T) / 2, nan=0.0)
    evals, evecs = np.linalg.eigh(corr)
    if evals.min() >= _EIG_FLOOR:
        return corr, False
    fixed = evecs @ np.diag(np.clip(evals, _EIG_FLOOR, None)) @ evecs.T
    d = np.sqrt(np.diag(fixed))
    fixed = fixed / np.outer(d, d)
    np.fill_diagonal(fixed, 1.0)
    return fixed, True


def ridge_for(rxx: np.ndarray) -> float:
    """The smallest ridge that brings the condition index sqrt(λmax/λmin) down to the bound."""
    evals = np.linalg.eigvalsh(rxx)
    lo, hi = max(evals.min(), 0.0), evals.max()
    bound = MAX_CONDITION_INDEX**2
    if lo > 0 and hi / lo <= bound:
        return 0.0
    return float((hi - bound * lo) / (bound - 1))


def relative_weights(rxx: np.ndarray, rxy: np.ndarray) -> np.ndarray:
    """Johnson's relative weights: ε_j = Σ_k Λ_jk² β*_k², with Λ = Rxx^½ and β* = Λ⁻¹ r_xy."""
    evals, evecs = np.linalg.eigh(rxx)
    root = np.sqrt(np.clip(evals, _EIG_FLOOR, None))
    lam = evecs @ np.diag(root) @ evecs.T
    beta_star = evecs @ np.diag(1 / root) @ evecs.T @ rxy
    return (lam**2) @ (beta_star**2)


def _blocks(corr: np.ndarray, m: int, unknown: np.ndarray) -> tuple[list[np.ndarray], bool]:
    """Per outcome, the valid correlation matrix of [outcome, predictors...]: the outcomes are
    fitted one at a time, so how they correlate with each other never enters."""
    corr = np.where(unknown, 0.0, corr)
    blocks, adjusted = [], False
    for j in range(m):
        idx = [j, *range(m, corr.shape[0])]
        block, changed = _valid_correlation(corr[np.ix_(idx, idx)])
        blocks.append(block)
        adjusted |= changed
    return blocks, adjusted


def _solve(blocks: list[np.ndarray], ridge: float):
    """Standardized coefficients, R² and relative weights of each outcome on the predictors."""
    out = []
    for block in blocks:
        rxx, rxy = block[1:, 1:], block[1:, 0]
        reg = rxx + ridge * np.eye(rxx.shape[0])
        beta = np.linalg.solve(reg, rxy)
        r2 = float(np.clip(2 * beta @ rxy - beta @ rxx @ beta, 0.0, 1.0))
        out.append((beta, r2, relative_weights(reg, rxy)))
    return out


def _replicate(values, weights, m, ridge, unknown):
    _, mean, sd, corr = _moments(values, weights)
    blocks, _ = _blocks(corr, m, unknown)
    fits = _solve(blocks, ridge)
    per_point = np.array([beta * sd[j] / sd[m:] for j, (beta, _, _) in enumerate(fits)])
    return mean, sd, fits, per_point


def fit(design: Design, *, min_n: int, min_per_predictor: int, seed: int, label: str = "rows") -> Fit:
    """Run the method described in the module docstring on ``design``; NotEnoughData if it cannot."""
    y0 = design.outcomes[:, 0]
    answered = ~np.isnan(design.predictors)
    rows = ~np.isnan(y0) & answered.any(axis=1)
    n = int(rows.sum())
    if n < min_n:
        raise NotEnoughData(f"{n} {label}; the analysis needs at least {min_n}.", n)
    outcomes, predictors = design.outcomes[rows], design.predictors[rows]
    clusters = design.clusters[rows] if design.clusters is not None else None
    names = list(design.names)
    notes: list[str] = []
    if np.nanstd(outcomes[:, 0]) == 0:
        raise NotEnoughData(f"All {n} {label} have the same outcome; nothing to explain.", n)

    n_per = ((~np.isnan(predictors)) & ~np.isnan(outcomes[:, [0]])).sum(axis=0)
    sd = np.nanstd(predictors, axis=0)
    keep = []
    for j, name in enumerate(names):
        if n_per[j] < min_per_predictor:
            notes.append(f"{name}: left out, {int(n_per[j])} answers (needs {min_per_predictor}).")
        elif not sd[j] > 0:
            notes.append(f"{name}: left out, every answer was the same.")
        else:
            keep.append(j)
    keep.sort(key=lambda j: -n_per[j])
    if len(keep) > MAX_STANDARDS:
        dropped = [names[j] for j in keep[MAX_STANDARDS:]]
        notes.append(
            f"Only the {MAX_STANDARDS} most answered standards enter; left out: {', '.join(dropped)}."
        )
        keep = keep[:MAX_STANDARDS]
    if not keep:
        raise NotEnoughData(
            f"No standard was answered by at least {min_per_predictor} of the {n} {label}.", n, notes
        )

    m = outcomes.shape[1]
    ones = np.ones(n)
    while True:
        values = np.column_stack([outcomes, predictors[:, keep]])
        count, _, _, corr = _moments(values, ones)
        pairs = [
            (a, b)
            for a in range(len(keep))
            for b in range(a + 1, len(keep))
            if count[m + a, m + b] >= MIN_PAIR_N and abs(corr[m + a, m + b]) >= NEAR_DUPLICATE_R
        ]
        if not pairs:
            break
        a, b = pairs[0]
        loser, winner = (keep[b], keep[a]) if n_per[keep[a]] >= n_per[keep[b]] else (keep[a], keep[b])
        r = corr[m + keep.index(loser), m + keep.index(winner)]
        notes.append(
            f"{names[loser]}: left out, it moves with {names[winner]} (r = {r:.2f}), "
            "so the two cannot be told apart."
        )
        keep.remove(loser)

    unknown = count < MIN_PAIR_N
    np.fill_diagonal(unknown, False)
    unknown[:m, :m] = False
    for a in range(len(keep)):
        for b in range(a + 1, len(keep)):
            if unknown[m + a, m + b]:
                notes.append(
                    f"{names[keep[a]]} and {names[keep[b]]} are rarely answered together "
                    f"({int(count[m + a, m + b])} {label}): taken as unrelated."
                )
    blocks, adjusted = _blocks(corr, m, unknown)
    if adjusted:
        notes.append("Pairwise correlations were adjusted to a consistent matrix.")
    ridge = ridge_for(blocks[0][1:, 1:])
    if ridge:
        notes.append(
            f"Standards are strongly intertwined: coefficients are ridge-regularized (λ = {ridge:.3f})."
        )

    mean, _, fits, per_point = _replicate(values, ones, m, ridge, unknown)
    beta, r2, weight = fits[0]
    result = Fit(
        kept=[design.keys[j] for j in keep],
        n=n,
        n_per=count[0, m:].astype(int),
        mean=mean[m:],
        r2=r2,
        beta=beta,
        weight=weight,
        per_point=per_point,
        notes=notes,
        ridge=ridge,
    )
    result.draws = _bootstrap(values, clusters, m, ridge, unknown, seed)
    return result


def _bootstrap(values, clusters, m, ridge, unknown, seed) -> dict:
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    if clusters is None:
        index, groups = np.arange(n), n
    else:
        _, index = np.unique(clusters, return_inverse=True)
        groups = int(index.max()) + 1
    betas, shares, per_points = [], [], []
    for _ in range(BOOTSTRAP):
        counts = np.bincount(rng.integers(0, groups, groups), minlength=groups)
        weights = counts[index].astype(float)
        with np.errstate(all="ignore"):
            try:
                _, _, fits, per_point = _replicate(values, weights, m, ridge, unknown)
            except np.linalg.LinAlgError:
                continue
        beta, _, weight = fits[0]
        total = weight.sum()
        betas.append(beta)
        shares.append(weight / total * 100 if total > 0 else np.full_like(weight, np.nan))
        per_points.append(per_point)
    return {"beta": np.array(betas), "share": np.array(shares), "per_point": np.array(per_points)}


def interval(draws: np.ndarray) -> tuple[float | None, float | None]:
    draws = draws[np.isfinite(draws)]
    if len(draws) < BOOTSTRAP // 2:
        return None, None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def correlation_interval(r: float, n: int) -> tuple[float | None, float | None]:
    """95 % interval of a Pearson correlation (Fisher's z)."""
    if n <= 3 or not math.isfinite(r):
        return None, None
    z, half = math.atanh(max(min(r, 0.999999), -0.999999)), 1.959964 / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def _num(value, digits: int = 4):
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def drivers_json(result: Fit, *, labels: dict, unit: str, outcome_index: int) -> list[dict]:
    """The ranked ``drivers`` list of a snapshot (by importance)."""
    weight_total = result.weight.sum()
    rows = []
    for j, key in enumerate(result.kept):
        low, high = interval(result.draws["beta"][:, j]) if len(result.draws["beta"]) else (None, None)
        share_low, share_high = (
            interval(result.draws["share"][:, j]) if len(result.draws["share"]) else (None, None)
        )
        pp = result.per_point[outcome_index, j]
        pp_low, pp_high = (
            interval(result.draws["per_point"][:, outcome_index, j])
            if len(result.draws["per_point"])
            else (None, None)
        )
        std_id, title, code = labels[key]
        rows.append(
            {
                "standard_id": std_id,
                "standard": title,
                "code": code,
                "effect": _num(result.beta[j]),
                "low": _num(low),
                "high": _num(high),
                "importance": _num(result.weight[j] / weight_total * 100 if weight_total > 0 else None, 2),
                "importance_low": _num(share_low, 2),
                "importance_high": _num(share_high, 2),
                "per_point": _num(pp),
                "per_point_low": _num(pp_low),
                "per_point_high": _num(pp_high),
                "per_point_unit": unit,
                "n": int(result.n_per[j]),
                "mean": _num(result.mean[j], 2),
                "items": [],
            }
        )
    rows.sort(key=lambda r: -(r["importance"] or 0))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


# --- reading the data ----------------------------------------------------------------------------


def _bounds(start: dt.date, end: dt.date, tz) -> tuple[dt.datetime, dt.datetime]:
    return (
        dt.datetime.combine(start, dt.time.min, tzinfo=tz),
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz),
    )


@dataclass
class Respondents:
    frame: pd.DataFrame  # index response_id: location_id, nps, nps_coded, <standard_id>...
    items: pd.DataFrame  # index response_id: <question_key>...
    item_standard: dict  # question_key -> standard_id
    item_labels: dict  # question_key -> question text
    since: dt.datetime | None  # set when the cap moved the start of the data


def read_respondents(start: dt.date, end: dt.date, tz) -> Respondents:
    """Respondent-level NPS and standard scores of the period (capped at MAX_RESPONSES NPS answers)."""
    low, high = _bounds(start, end, tz)
    nps_rows = list(
        Answer.objects.filter(
            question_type=QuestionType.NPS, number__isnull=False, submitted_at__gte=low, submitted_at__lt=high
        )
        .order_by("-submitted_at", "-id")
        .values_list("response_id", "location_id", "number", "submitted_at")[:MAX_RESPONSES]
    )
    since = nps_rows[-1][3] if len(nps_rows) == MAX_RESPONSES else None
    nps = pd.DataFrame.from_records(nps_rows, columns=["response_id", "location_id", "nps", "at"])
    if nps.empty:
        empty = pd.DataFrame(columns=["location_id", "nps", "nps_coded"])
        return Respondents(empty, pd.DataFrame(), {}, {}, since)
    nps["nps"] = nps["nps"].astype(float)
    nps = nps.groupby("response_id").agg(location_id=("location_id", "first"), nps=("nps", "mean"))
    nps["nps_coded"] = np.where(nps["nps"] >= 9, 100.0, np.where(nps["nps"] <= 6, -100.0, 0.0))

    point_types = [t for t in GAP_TYPES if t != QuestionType.NPS]
    answers = (
        Answer.objects.filter(
            standard_id__isnull=False,
            number__isnull=False,
            question_type__in=point_types,
            submitted_at__gte=since or low,
            submitted_at__lt=high,
        )
        .order_by()
        .values_list(
            "response_id",
            "standard_id",
            "question_key",
            "question_type",
            "number",
            "question__scale_min",
            "question__scale_max",
        )
    )
    ans = pd.DataFrame.from_records(
        answers.iterator(chunk_size=20_000),
        columns=["response_id", "standard_id", "key", "qtype", "number", "smin", "smax"],
    )
    ans = ans[ans["response_id"].isin(nps.index)]
    if ans.empty:
        return Respondents(nps, pd.DataFrame(index=nps.index), {}, {}, since)
    lows = ans["qtype"].map({str(t): s[0] for t, s in GAP_SCALES.items()}).fillna(ans["smin"]).astype(float)
    highs = ans["qtype"].map({str(t): s[1] for t, s in GAP_SCALES.items()}).fillna(ans["smax"]).astype(float)
    usable = highs > lows  # a rating question without a usable scale cannot be put on 0-100
    ans = ans[usable]
    ans = ans.assign(
        point=(ans["number"].astype(float) - lows[usable]) * 100 / (highs[usable] - lows[usable])
    )
    by_standard = ans.pivot_table(index="response_id", columns="standard_id", values="point", aggfunc="mean")
    frame = nps.join(by_standard, how="left")
    items = ans.pivot_table(index="response_id", columns="key", values="point", aggfunc="mean")
    item_standard = ans.groupby("key")["standard_id"].agg(lambda s: s.mode().iloc[0]).to_dict()
    labels = {}
    for key, text in (
        Question.objects.filter(key__in=list(item_standard))
        .order_by("key", "-version_id")
        .values_list("key", "text")
    ):
        if key not in labels:
            labels[key] = (text or {}).get("en") or next(iter((text or {}).values()), "") or key
    return Respondents(frame, items, item_standard, labels, since)


def _period_end(start: dt.date, period: str) -> dt.date:
    """The first day after a business-metric period."""
    if period == PeriodKind.DAY:
        return start + dt.timedelta(days=1)
    if period == PeriodKind.WEEK:
        return start + dt.timedelta(days=7)
    months = 3 if period == PeriodKind.QUARTER else 1
    month = start.month - 1 + months
    return dt.date(start.year + month // 12, month % 12 + 1, 1)


@dataclass
class Panel:
    frame: pd.DataFrame  # location_id, period_start, outcome, nps, nps_n, <standard_id>...
    period: str
    notes: list


def read_panel(kind: str, start: dt.date, end: dt.date) -> Panel | None:
    """Location-periods with the business outcome, the standards' scores and NPS of the period."""
    metrics = pd.DataFrame.from_records(
        BusinessMetric.objects.filter(kind=kind, period_start__gte=start, period_start__lte=end)
        .order_by()
        .values_list("location_id", "period", "period_start", "value"),
        columns=["location_id", "period", "period_start", "outcome"],
    )
    if metrics.empty:
        return None
    notes = []
    period = metrics["period"].mode().iloc[0]
    if (metrics["period"] != period).any():
        notes.append(
            f"Only {PeriodKind(period).label.lower()}ly figures are used; other periods are left out."
        )
        metrics = metrics[metrics["period"] == period]
    metrics["outcome"] = metrics["outcome"].astype(float)
    last_day = max(_period_end(d, period) for d in metrics["period_start"])
    trunc = Trunc("day", period, output_field=Rollup._meta.get_field("day"))
    base = Rollup.objects.filter(
        day__gte=start, day__lt=last_day, location_id__in=metrics["location_id"].unique().tolist()
    ).order_by()
    scores = pd.DataFrame.from_records(
        base.filter(measure__in=STANDARD_MEASURES, standard_id__isnull=False)
        .annotate(p=trunc)
        .values("location_id", "standard_id", "p")
        .annotate(n=Sum("n"), total=Sum("total"))
        .values_list("location_id", "standard_id", "p", "n", "total"),
        columns=["location_id", "standard_id", "period_start", "n", "total"],
    )
    frame = metrics.set_index(["location_id", "period_start"])[["outcome"]]
    if not scores.empty:
        scores = scores[scores["n"] >= MIN_POINTS_PER_CELL]
        scores["score"] = scores["total"].astype(float) / scores["n"]
        wide = scores.pivot_table(
            index=["location_id", "period_start"], columns="standard_id", values="score", aggfunc="mean"
        )
        frame = frame.join(wide, how="left")
    nps = pd.DataFrame.from_records(
        base.filter(measure=Measure.NPS)
        .annotate(p=trunc)
        .values("location_id", "p")
        .annotate(n=Sum("n"), top=Sum("top"), bottom=Sum("bottom"))
        .values_list("location_id", "p", "n", "top", "bottom"),
        columns=["location_id", "period_start", "nps_n", "top", "bottom"],
    ).set_index(["location_id", "period_start"])
    if not nps.empty:
        nps["nps"] = (nps["top"] - nps["bottom"]) * 100.0 / nps["nps_n"]
        frame = frame.join(nps[["nps", "nps_n"]], how="left")
    else:
        frame["nps"], frame["nps_n"] = np.nan, 0
    return Panel(frame.reset_index(), period, notes)


def demean(frame: pd.DataFrame, columns: list, by: list) -> pd.DataFrame:
    """Remove group means (alternating projections: exact for unbalanced two-way panels at convergence)."""
    out = frame[columns].astype(float).copy()
    for _ in range(200):
        before = out.copy()
        for group in by:
            out = out - out.groupby(frame[group].values).transform("mean")
        if (out - before).abs().to_numpy().max(initial=0) < 1e-9:
            break
    return out


# --- the analyses --------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """One snapshot to store."""

    location_id: int | None
    outcome: str
    period_start: dt.date
    method: str
    n: int
    r_squared: float | None
    drivers: list
    value: dict


def _seed(org_id: int, location_id, outcome: str) -> int:
    return (org_id * 1_000_003 + (location_id or 0) * 101 + sum(map(ord, outcome))) % (2**32)


def _refusal(location_id, outcome, start, method, exc: NotEnoughData, what: str) -> Snapshot:
    return Snapshot(
        location_id=location_id,
        outcome=outcome,
        period_start=start,
        method=method,
        n=exc.n,
        r_squared=None,
        drivers=[],
        value={
            "status": "not_enough_data",
            "message": f"Not enough data: {what}: {exc.message}",
            "notes": exc.notes,
            "caveats": [],
            "values": [],
        },
    )


def _standard_labels(ids) -> dict:
    return {
        s.pk: (s.pk, s.title, s.code)
        for s in Standard.objects.filter(pk__in=[int(i) for i in ids]).order_by()
    }


def nps_analysis(
    data: Respondents, *, org_id: int, location_id, labels: dict, start: dt.date, end: dt.date
) -> tuple[Snapshot, Fit | None]:
    frame = data.frame if location_id is None else data.frame[data.frame["location_id"] == location_id]
    std_cols = [c for c in frame.columns if c not in ("location_id", "nps", "nps_coded")]
    names = [labels[c][1] if c in labels else str(c) for c in std_cols]
    design = Design(
        outcomes=frame[["nps", "nps_coded"]].to_numpy(float),
        predictors=frame[std_cols].to_numpy(float) if std_cols else np.empty((len(frame), 0)),
        keys=std_cols,
        names=names,
    )
    where = "the organization" if location_id is None else "this location"
    what = (
        f"respondents at {where} who answered the NPS question and at least one question linked to "
        f"a standard between {start} and {end}"
    )
    try:
        result = fit(
            design,
            min_n=MIN_RESPONDENTS,
            min_per_predictor=MIN_STANDARD_N,
            seed=_seed(org_id, location_id, Outcome.NPS),
            label="respondents",
        )
    except NotEnoughData as exc:
        return _refusal(location_id, Outcome.NPS, start, NPS_METHOD, exc, what), None
    drivers = drivers_json(
        result, labels=labels, unit="NPS points per point on the standard", outcome_index=1
    )
    _attach_items(drivers, data, frame)
    notes = list(result.notes)
    if data.since is not None:
        notes.insert(
            0,
            f"Capped at the {MAX_RESPONSES:,} most recent responses: data from {data.since:%Y-%m-%d} on.",
        )
    return (
        Snapshot(
            location_id=location_id,
            outcome=Outcome.NPS,
            period_start=start,
            method=NPS_METHOD,
            n=result.n,
            r_squared=_num(result.r2),
            drivers=drivers,
            value={"status": "ok", "message": "", "notes": notes, "caveats": [], "values": []},
        ),
        result,
    )


def _attach_items(drivers: list, data: Respondents, frame: pd.DataFrame) -> None:
    if data.items.empty:
        return
    items = data.items.reindex(frame.index)
    nps = frame["nps"]
    for driver in drivers:
        keys = [k for k, s in data.item_standard.items() if s == driver["standard_id"] and k in items.columns]
        out = []
        for key in keys:
            both = items[key].notna() & nps.notna()
            n = int(both.sum())
            if n < 3 or items[key][both].std() == 0 or nps[both].std() == 0:
                r = float("nan")
            else:
                r = float(np.corrcoef(items[key][both], nps[both])[0, 1])
            low, high = correlation_interval(r, n)
            out.append(
                {
                    "key": key,
                    "label": data.item_labels.get(key, key),
                    "r": _num(r),
                    "low": _num(low),
                    "high": _num(high),
                    "n": n,
                }
            )
        out.sort(key=lambda i: -(i["r"] if i["r"] is not None else -2))
        driver["items"] = out


def _panel_design(panel: Panel, columns: list, *, location_id) -> tuple[pd.DataFrame, Design, list]:
    """Complete location-periods on ``columns`` (outcome first), fixed effects removed."""
    frame = panel.frame if location_id is None else panel.frame[panel.frame["location_id"] == location_id]
    frame = frame.dropna(subset=columns)
    notes = []
    if location_id is None and len(frame):
        by = [g for g in ("location_id", "period_start") if frame[g].nunique() > 1]
        values = demean(frame, columns, by) if by else frame[columns] - frame[columns].mean()
    else:
        values = frame[columns] - frame[columns].mean()
    design = Design(
        outcomes=values[[columns[0]]].to_numpy(float),
        predictors=values[columns[1:]].to_numpy(float),
        keys=list(columns[1:]),
        names=[str(c) for c in columns[1:]],
        clusters=frame["location_id"].to_numpy() if location_id is None else None,
    )
    return frame, design, notes


def _fe_min(frame: pd.DataFrame, p: int, location_id) -> int:
    """Rows needed so the residual degrees of freedom stay ≥ OBS_PER_PREDICTOR after fixed effects."""
    if location_id is not None:
        return max(MIN_LOCATION_PERIODS, OBS_PER_PREDICTOR * p + 1)
    effects = frame["location_id"].nunique() + frame["period_start"].nunique() - 1
    return max(MIN_LOCATION_PERIODS, OBS_PER_PREDICTOR * p + effects)


def nps_value(panel: Panel, *, org_id: int, kind: str) -> dict | None:
    """Change in the business outcome per location-period per one NPS point (organization panel)."""
    frame = panel.frame[panel.frame["nps_n"].fillna(0) >= MIN_NPS_RESPONSES]
    if frame.empty:
        return None
    frame, design, _ = _panel_design(Panel(frame, panel.period, []), ["outcome", "nps"], location_id=None)
    try:
        result = fit(
            design,
            min_n=_fe_min(frame, 1, None),
            min_per_predictor=MIN_LOCATION_PERIODS,
            seed=_seed(org_id, None, f"{kind}-nps"),
            label="location-periods with NPS",
        )
    except NotEnoughData:
        return None
    low, high = interval(result.draws["per_point"][:, 0, 0])
    return {
        "value": _num(result.per_point[0, 0]),
        "low": _num(low),
        "high": _num(high),
        "n": result.n,
        "draws": result.draws["per_point"][:, 0, 0],
    }


def business_analysis(
    panel: Panel | None, kind: str, *, org_id: int, location_id, labels: dict, start, end
) -> Snapshot:
    method = PANEL_METHOD if location_id is None else SERIES_METHOD
    where = "the organization's" if location_id is None else "this location's"
    if panel is None:
        exc = NotEnoughData(
            f"no {Outcome(kind).label.lower()} figures were imported between {start} and {end}.", 0
        )
        return _refusal(location_id, kind, start, method, exc, f"{where} location-periods")
    std_cols = [c for c in panel.frame.columns if not isinstance(c, str)]
    frame = panel.frame if location_id is None else panel.frame[panel.frame["location_id"] == location_id]
    frame = frame[frame["outcome"].notna()]
    coverage = frame[std_cols].notna().mean() if std_cols else pd.Series(dtype=float)
    chosen = [c for c in coverage.sort_values(ascending=False).index if coverage[c] >= PANEL_COVERAGE]
    notes = list(panel.notes)
    complete = len(frame.dropna(subset=chosen)) if chosen else 0
    room = max(1, complete // OBS_PER_PREDICTOR)
    if len(chosen) > room:
        left = ", ".join(labels.get(c, (c, str(c), ""))[1] for c in chosen[room:])
        notes.append(f"{complete} location-periods carry {room} standard(s) at most; left out: {left}.")
        chosen = chosen[:room]
    what = f"{where} location-periods with {Outcome(kind).label.lower()} and standard scores"
    if not chosen:
        exc = NotEnoughData(
            f"{len(frame)} location-periods, none with scores on any standard in at least "
            f"{int(PANEL_COVERAGE * 100)} % of them; the analysis needs at least {MIN_LOCATION_PERIODS}.",
            len(frame),
            notes,
        )
        return _refusal(location_id, kind, start, method, exc, what)
    rows, design, _ = _panel_design(panel, ["outcome", *chosen], location_id=location_id)
    design.names = [labels.get(c, (c, str(c), ""))[1] for c in chosen]
    try:
        result = fit(
            design,
            min_n=_fe_min(rows, len(chosen), location_id) if len(rows) else MIN_LOCATION_PERIODS,
            min_per_predictor=MIN_LOCATION_PERIODS,
            seed=_seed(org_id, location_id, kind),
            label="location-periods",
        )
    except NotEnoughData as exc:
        exc.notes = notes + exc.notes
        return _refusal(location_id, kind, start, method, exc, what)
    unit = UNITS[kind].format(period=PeriodKind(panel.period).label.lower())
    drivers = drivers_json(result, labels=labels, unit=f"{unit} per point on the standard", outcome_index=0)
    for driver in drivers:  # the fit saw demeaned scores: report the standards' own level
        driver["mean"] = _num(float(rows[driver["standard_id"]].mean()), 2)
    value = {
        "outcome": kind,
        "unit": unit,
        "basis": f"{result.n} location-periods, {where} own results",
        "per_nps_point": None,
        "per_standard": [
            {
                "standard_id": d["standard_id"],
                "standard": d["standard"],
                "value": d["per_point"],
                "low": d["per_point_low"],
                "high": d["per_point_high"],
            }
            for d in drivers
        ],
    }
    if location_id is None:
        notes.append("Store and period fixed effects: store size and season do not count as a driver.")
    return Snapshot(
        location_id=location_id,
        outcome=kind,
        period_start=start,
        method=method,
        n=result.n,
        r_squared=_num(result.r2),
        drivers=drivers,
        value={
            "status": "ok",
            "message": "",
            "notes": notes + result.notes,
            "caveats": CAVEATS,
            "values": [value],
        },
    )


def _chain(drivers: list, result: Fit, per_nps: dict) -> list:
    """Value of one point on each standard through NPS: (NPS per point) x (value per NPS point)."""
    out = []
    nps_draws, value_draws = result.draws["per_point"], per_nps["draws"]
    k = min(len(nps_draws), len(value_draws))
    for driver in drivers:
        j = result.kept.index(driver["standard_id"])
        point = (driver["per_point"] or 0) * (per_nps["value"] or 0)
        low, high = interval(nps_draws[:k, 1, j] * value_draws[:k]) if k else (None, None)
        out.append(
            {
                "standard_id": driver["standard_id"],
                "standard": driver["standard"],
                "value": _num(point),
                "low": _num(low),
                "high": _num(high),
            }
        )
    return out


def compute(org_id: int, *, start: dt.date, end: dt.date, location_ids: list[int]) -> list[Snapshot]:
    """Every snapshot of the organization: NPS, retention and sales, org-wide and per location."""
    tz = zoneinfo.ZoneInfo(Organization.objects.get(pk=org_id).time_zone or "UTC")
    respondents = read_respondents(start, end, tz)
    business_start = end - dt.timedelta(days=BUSINESS_WINDOW_DAYS - 1)
    panels = {kind: read_panel(kind, business_start, end) for kind in BUSINESS_OUTCOMES}
    std_ids = {c for c in respondents.frame.columns if not isinstance(c, str)}
    for panel in panels.values():
        if panel is not None:
            std_ids |= {c for c in panel.frame.columns if not isinstance(c, str)}
    labels = _standard_labels(std_ids)
    per_nps = {
        kind: nps_value(panel, org_id=org_id, kind=kind) if panel else None for kind, panel in panels.items()
    }

    out = []
    for location_id in [None, *location_ids]:
        snapshot, result = nps_analysis(
            respondents, org_id=org_id, location_id=location_id, labels=labels, start=start, end=end
        )
        if result is not None:
            snapshot.value["caveats"] = CAVEATS
            for kind, value in per_nps.items():
                if value is None:
                    continue
                unit = UNITS[kind].format(period=PeriodKind(panels[kind].period).label.lower())
                snapshot.value["values"].append(
                    {
                        "outcome": kind,
                        "unit": unit,
                        "basis": f"{value['n']} location-periods across the organization (store and period "
                        "fixed effects), chained through each standard's effect on NPS",
                        "per_nps_point": {k: value[k] for k in ("value", "low", "high", "n")},
                        "per_standard": _chain(snapshot.drivers, result, value),
                    }
                )
        out.append(snapshot)
        for kind in BUSINESS_OUTCOMES:
            snap = business_analysis(
                panels[kind],
                kind,
                org_id=org_id,
                location_id=location_id,
                labels=labels,
                start=business_start,
                end=end,
            )
            if snap.value["status"] == "ok" and per_nps[kind] is not None:
                snap.value["values"][0]["per_nps_point"] = {
                    k: per_nps[kind][k] for k in ("value", "low", "high", "n")
                }
            out.append(snap)
    return out


# --- entry points --------------------------------------------------------------------------------


def default_period(org) -> tuple[dt.date, dt.date]:
    tz = zoneinfo.ZoneInfo(org.time_zone or "UTC")
    end = timezone.now().astimezone(tz).date()
    return end - dt.timedelta(days=WINDOW_DAYS - 1), end


def validate_period(start, end) -> tuple[dt.date | None, dt.date | None]:
    """Both or neither; start ≤ end; at most MAX_WINDOW_DAYS. Errors name the field."""
    if (start is None) != (end is None):
        missing = "period_start" if start is None else "period_end"
        raise ValidationError({missing: "Give both period_start and period_end, or neither."})
    if start is None:
        return None, None
    if end < start:
        raise ValidationError({"period_end": "Must be on or after period_start."})
    if (end - start).days + 1 > MAX_WINDOW_DAYS:
        raise ValidationError({"period_start": f"The period may span at most {MAX_WINDOW_DAYS} days."})
    return start, end


def drivers_compute(*, organization, period_start=None, period_end=None, now=None) -> int:
    """Recompute and store every snapshot of the organization (org-wide and each location).

    Derived figures: no audit-log row or event (the request to recompute is logged instead,
    :func:`request_recompute`). Snapshots are upserted on their key, and those computed more than
    ``KEEP_DAYS`` ago are pruned. Returns the number of snapshots stored.
    """
    org_id = _check_tenant(organization)
    org = Organization.objects.get(pk=org_id)
    start, end = validate_period(period_start, period_end)
    if start is None:
        start, end = default_period(org)
    now = now or timezone.now()
    locations = list(Location.objects.order_by("pk").values_list("pk", flat=True))
    snapshots = compute(org_id, start=start, end=end, location_ids=locations)
    with transaction.atomic():
        for snap in snapshots:
            DriverAnalysis.objects.update_or_create(
                organization_id=org_id,
                location_id=snap.location_id,
                outcome=snap.outcome,
                period_start=snap.period_start,
                period_end=end,
                defaults={
                    "method": snap.method[:200],
                    "n": snap.n,
                    "r_squared": snap.r_squared,
                    "drivers": snap.drivers,
                    "value_per_point": snap.value,
                    "computed_at": now,
                },
            )
        DriverAnalysis.objects.filter(computed_at__lt=now - dt.timedelta(days=KEEP_DAYS)).delete()
    return len(snapshots)


@transaction.atomic
def request_recompute(*, organization, actor: Actor, period_start=None, period_end=None) -> dict:
    """Queue a recompute (after commit) and log who asked; bad periods are a ValidationError."""
    org_id = _check_tenant(organization)
    start, end = validate_period(period_start, period_end)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="driver_analysis.recompute",
        object_type="alignment.DriverAnalysis",
        changes={"period_start": start and start.isoformat(), "period_end": end and end.isoformat()},
    )
    from alignment.driver_tasks import drivers_compute_task

    args = (start.isoformat(), end.isoformat()) if start else ()
    transaction.on_commit(lambda: drivers_compute_task.delay(org_id, *args))
    return {"queued": True, "period_start": start, "period_end": end}
