"""Our samplers against CEBRA 0.6.1's own distributions, drawn on the same labels.

For every distribution CEBRA's sklearn estimator can pick (notes/cebra-family.md section 2), many
references, positives and negatives are drawn with our sampler (`make_sampler`) and with CEBRA's
classes (`cebra.distributions.*`, driven the way CEBRA's loaders drive them), both seeded, on the
CPU. The two samples are compared statistically, each comparison a two-sample chi-square test of
homogeneity at ALPHA = 1e-3 on about 49 000 draws a side (cells with fewer than 10 draws in both
samples together are pooled), plus exact invariants:

- the prior: references and negatives over time (20 bins per session), and their joint (6 x 6
  bins: negatives independent of references), or over classes;
- the positive given the reference: label[pos] - label[ref] jointly with label[ref] (quantile bins
  of each continuous column; flag columns by value), pos - ref time offsets (-60 ... 60, clipped),
  the same class (exactly 100 %), the rank of the positive among its class's samples (deciles:
  uniform within the class, independent of the reference's), the session of the positive.

The numbers are not the same, only the distributions: our draws come from one seeded
`torch.Generator` (a deliberate difference, sampling.py), CEBRA's from its private generators
(seeded here through `.generator`) and numpy's and torch's global RNGs (seeded here, then
restored). `test_broken_sampler_is_rejected` shows that every comparison rejects a sampler that is
wrong in one way (a uniform positive, a time offset off by one, a delta std 10 % too wide, a wrong
prior, positives in the wrong session, ...).

CEBRA's search is given the labels in float64. In float32 (what the estimator passes it) CEBRA's
argmin of |x|^2 + |q|^2 - 2 x.q cannot tell apart labels closer than its rounding (~1 mm on the rat
track) and takes the earliest of them; our index is exact. That deliberate difference (nearest.py)
is measured in `test_cebra_float32_search_is_nearest_only_to_its_rounding`: on float32 labels the
distributions of positive times differ by far more than ALPHA allows, on float64 ones they agree.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import stats

cebra = pytest.importorskip(
    "cebra",
    reason="CEBRA 0.6.1 is not installed here: pip install cebra==0.6.1 torch==2.13.0 to run the reference tests")
if cebra.__version__ != "0.6.1":
    pytest.skip(f"reference tests are pinned to CEBRA 0.6.1, found {cebra.__version__}", allow_module_level=True)

from cebra.distributions.continuous import DeltaNormalDistribution, TimeContrastive, TimedeltaDistribution  # noqa: E402
from cebra.distributions.discrete import DiscreteEmpirical  # noqa: E402
from cebra.distributions.index import ConditionalIndex, ContinuousIndex  # noqa: E402
from cebra.distributions.mixed import MixedTimeDeltaDistribution  # noqa: E402
from cebra.distributions.multisession import DiscreteMultisessionSampler, MultisessionSampler  # noqa: E402

from cebra_core.engine.nearest import NearestLabelIndex  # noqa: E402
from cebra_core.engine.sampling import Labels, make_sampler  # noqa: E402
from cebra_core.sessions.simulate import simulate_trajectory  # noqa: E402
from cebra_core.sessions.simulate_openfield import simulate_walk  # noqa: E402

pytestmark = [pytest.mark.reference, pytest.mark.usefixtures("one_thread")]

ALPHA = 1e-3  # every chi-square comparison: p must exceed this
DELTA = 10  # time_offsets
T = 3000  # samples of a single session
STEPS, BATCH = 48, 1024  # single session: 49 152 draws a side
MULTI_LENGTHS = (2000, 3000, 1500, 2500)
MULTI_STEPS, MULTI_BATCH = 24, 512  # 4 sessions: 49 152 draws a side
TIME_BINS = 20


# ----------------------------------------------------------------------------- labels
def track(n: int, seed: int, mean_speed: float = 0.5) -> np.ndarray:
    """The rat track (T, 3) float32: position (m) and the right / left running flags."""
    position, right, _ = simulate_trajectory(n, np.random.default_rng(seed), mean_speed=mean_speed)
    return np.stack([position, right, ~right], 1).astype(np.float32)


def open_field(n: int, seed: int) -> np.ndarray:
    """An open-field random walk (T, 2) float32: x, y (m) in a 0.5 m arena."""
    return simulate_walk(n, np.random.default_rng(seed)).astype(np.float32)


def class_blocks(n: int, values, p, seed: int) -> np.ndarray:
    """(T,) int64 classes in blocks of 20-120 samples, each block's class drawn with probabilities p."""
    rng = np.random.default_rng(seed)
    out = []
    while sum(map(len, out)) < n:
        out.append(np.full(rng.integers(20, 121), rng.choice(values, p=p)))
    return np.concatenate(out)[:n].astype(np.int64)


@dataclass
class Case:
    """One distribution on one set of labels (per session: continuous (T, c) float32, discrete (T,) int64)."""

    kind: str  # time_delta, time, delta, discrete, mixed
    continuous: list | None
    discrete: list | None
    delta: float | None = None

    @property
    def multi(self) -> bool:
        return len(self.continuous or self.discrete) > 1

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in (self.continuous or self.discrete)]

    def labels(self) -> list[Labels]:
        n = len(self.lengths)
        cont = self.continuous or [None] * n
        disc = self.discrete or [None] * n
        return [Labels(None if c is None else torch.from_numpy(c), None if d is None else torch.from_numpy(d))
                for c, d in zip(cont, disc)]


MIXED_VALUES = (0, 1, 3)  # class value 2 has no sample: its share of the balanced prior passes to class 3


@functools.cache
def case(name: str) -> Case:
    multi_track = [track(n, 40 + s, mean_speed=1.0 if s == 2 else 0.5) for s, n in enumerate(MULTI_LENGTHS)]
    multi_classes = [class_blocks(n, [0, 1, 2, 3], p, 50 + s)
                     for s, (n, p) in enumerate(zip(MULTI_LENGTHS, ([.4, .3, .2, .1], [.1, .2, .3, .4],
                                                                     [.25, .25, .25, .25], [.5, .2, .2, .1])))]
    mixed_classes = class_blocks(T, MIXED_VALUES, [.5, .35, .15], 7)
    cases = {
        "time_delta-track": lambda: Case("time_delta", [track(T, 1)[:, :1]], None),
        "time_delta-track+flags": lambda: Case("time_delta", [track(T, 1)], None),
        "time_delta-openfield": lambda: Case("time_delta", [open_field(T, 2)], None),
        "time-track": lambda: Case("time", [track(T, 1)], None),
        "delta-track": lambda: Case("delta", [track(T, 1)[:, :1]], None, delta=0.05),
        "delta-openfield": lambda: Case("delta", [open_field(T, 2)], None, delta=0.02),
        "discrete": lambda: Case("discrete", None, [class_blocks(T, [0, 1, 2], [.6, .3, .1], 3)]),
        "mixed-track": lambda: Case("mixed", [track(T, 4)[:, :1]], [mixed_classes]),
        "mixed-openfield": lambda: Case("mixed", [open_field(T, 5)], [mixed_classes]),
        "multi-time_delta": lambda: Case("time_delta", multi_track, None),
        "multi-discrete": lambda: Case("discrete", None, multi_classes),
        "multi-delta": lambda: Case("delta", [x[:, :1] for x in multi_track], None, delta=0.05),
        "multi-mixed": lambda: Case("mixed", [open_field(n, 60 + s) for s, n in enumerate(MULTI_LENGTHS)],
                                    multi_classes),
        "multi-time": lambda: Case("time", multi_track, None),
    }
    return cases[name]()


# ----------------------------------------------------------------------------- draws
@dataclass
class Draws:
    """Flattened draws: local time index and session of each reference, its positive and a negative."""

    ref: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    ref_s: np.ndarray
    pos_s: np.ndarray
    neg_s: np.ndarray

    def replace(self, **kw) -> "Draws":
        return Draws(**{**self.__dict__, **kw})


def _cat(parts) -> Draws:
    return Draws(*(np.concatenate([np.asarray(p[i]) for p in parts]).astype(np.int64) for i in range(6)))


def ours_draws(c: Case, *, seed: int = 0, time_offset: int = DELTA, delta: float | None = None) -> Draws:
    steps, batch = (MULTI_STEPS, MULTI_BATCH) if c.multi else (STEPS, BATCH)
    conditional = "time_delta" if c.kind in ("discrete", "mixed") else c.kind
    sampler = make_sampler(c.labels(), conditional=conditional, time_offset=time_offset,
                           delta=c.delta if delta is None else delta, seed=seed, device="cpu", multi=c.multi)
    parts = []
    for _ in range(steps):
        b = sampler.sample(batch)
        sessions = torch.arange(b.reference.shape[0]).repeat_interleave(batch)
        pos, pos_s = b.positive.reshape(-1), sessions
        if b.positive_order is not None:  # the partner of reference row r is positive row order[r]
            pos, pos_s = pos[b.positive_order], b.positive_order // batch
        parts.append((b.reference.reshape(-1), pos, b.negative.reshape(-1), sessions, pos_s, sessions))
    return _cat(parts)


@contextlib.contextmanager
def global_seed(seed: int):
    """Seed numpy's and torch's global RNGs (CEBRA draws from them), and restore them afterwards."""
    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


class _Collection:
    """What CEBRA's multi-session samplers read from a `cebra.data.DatasetCollection` (which would cast the
    labels to float32)."""

    def __init__(self, continuous=None, discrete=None):
        n = len(continuous or discrete)
        cont = [None] * n if continuous is None else [torch.from_numpy(x).double() for x in continuous]
        disc = [None] * n if discrete is None else [torch.from_numpy(x) for x in discrete]
        self.sessions = [SimpleNamespace(continuous_index=c, discrete_index=d) for c, d in zip(cont, disc)]
        self.session_lengths = [len(c if c is not None else d) for c, d in zip(cont, disc)]
        self.continuous_index = None if continuous is None else torch.cat(cont)
        self.discrete_index = None if discrete is None else torch.cat(disc)

    def iter_sessions(self):
        return iter(self.sessions)


def cebra_single(c: Case, seed: int = 0) -> Draws:
    """CEBRA's single-session distribution for the case, driven as its loader's get_indices drives it
    (cebra/data/single_session.py): 2B prior draws split into references and negatives, or (mixed) two prior
    draws of B; the discrete conditional gets the references' class values."""
    cont = None if c.continuous is None else torch.from_numpy(c.continuous[0]).double()
    disc = None if c.discrete is None else torch.from_numpy(c.discrete[0])
    if c.kind == "time_delta":
        dist = TimedeltaDistribution(cont, DELTA)
    elif c.kind == "delta":
        dist = DeltaNormalDistribution(cont, c.delta)
    elif c.kind == "time":
        dist = TimeContrastive(num_samples=len(cont), time_offset=DELTA)
    elif c.kind == "discrete":
        dist = DiscreteEmpirical(disc)
    else:
        dist = MixedTimeDeltaDistribution(disc, cont, time_delta=DELTA)
    for i, holder in enumerate([dist, getattr(dist, "prior", None)]):  # their private generators
        if holder is not None and hasattr(holder, "generator"):
            holder.generator.manual_seed(seed + 100 + i)
    parts = []
    with global_seed(seed):
        for _ in range(STEPS):
            if c.kind == "mixed":
                ref, neg = dist.sample_prior(BATCH), dist.sample_prior(BATCH)
                pos = dist.sample_conditional(ref)
            else:
                both = dist.sample_prior(2 * BATCH)
                ref, neg = both[:BATCH], both[BATCH:]
                pos = dist.sample_conditional(disc[ref] if c.kind == "discrete" else ref)
            zero = np.zeros(BATCH)
            parts.append((ref, pos, neg, zero, zero, zero))
    return _cat(parts)


def _cebra_multi_loop(prior, conditional, steps, batch, seed) -> Draws:
    """CEBRA's MultiSessionLoader.get_indices (B references and B negatives per session, then the positives
    with the permutation) and the solver's re-pairing, aligned_pos[r] = pos_flat[index_reversed[r]]."""
    parts = []
    with global_seed(seed):
        for _ in range(steps):
            ref, neg = prior(batch), prior(batch)
            pos, _, index_reversed = conditional(ref)
            sessions = np.repeat(np.arange(ref.shape[0]), batch)
            parts.append((ref.reshape(-1), pos.reshape(-1)[index_reversed], neg.reshape(-1), sessions,
                          index_reversed // batch, sessions))
    return _cat(parts)


def cebra_multi(c: Case, seed: int = 0) -> Draws:
    """CEBRA's MultisessionSampler (continuous) or DiscreteMultisessionSampler, as its loader drives it. The
    continuous sampler's per-session index is rebuilt over the float64 labels (it casts them to float32)."""
    if c.kind == "discrete":
        sampler = DiscreteMultisessionSampler(_Collection(discrete=c.discrete))
    else:
        sampler = MultisessionSampler(_Collection(continuous=c.continuous), DELTA)
        sampler.index = [ContinuousIndex(torch.from_numpy(x).double()) for x in c.continuous]
    return _cebra_multi_loop(sampler.sample_prior, sampler.sample_conditional, MULTI_STEPS, MULTI_BATCH, seed)


def cebra_composed_multi(c: Case, seed: int = 0) -> Draws:
    """The documented multi-session definitions CEBRA 0.6.1 lacks (sampling.py's docstring), built from
    CEBRA's parts: MultisessionSampler's prior, pooled delta table and permutation; the query label[ref] +
    delta (mixed) or label[ref] + N(0, delta^2) as DeltaNormalDistribution draws it; the search in the
    permuted session by CEBRA's ContinuousIndex, or its ConditionalIndex within the reference's class."""
    sampler = MultisessionSampler(_Collection(continuous=c.continuous), DELTA)
    starts = sampler.lengths
    if c.kind == "mixed":
        all_classes = np.concatenate(c.discrete)
        index = [ConditionalIndex(torch.from_numpy(d), torch.from_numpy(x).double())
                 for d, x in zip(c.discrete, c.continuous)]
    else:
        index = [ContinuousIndex(torch.from_numpy(x).double()) for x in c.continuous]

    def conditional(ref):
        S, B = ref.shape
        rows = (ref + starts[:, None]).reshape(-1)
        mean = torch.from_numpy(sampler.all_data[rows])
        if c.kind == "delta":
            query = torch.distributions.Normal(loc=mean, scale=torch.ones_like(mean) * c.delta).sample()
        else:
            query = mean + torch.from_numpy(sampler.time_difference)[torch.randint(len(sampler.time_difference),
                                                                                   (len(rows),))]
        perm = np.random.permutation(S * B)
        query = query[perm].reshape(S, B, -1)
        pos = np.zeros((S, B), dtype=np.int64)
        for i in range(S):
            if c.kind == "mixed":
                klass = torch.from_numpy(all_classes[rows[perm]].reshape(S, B)[i])
                pos[i] = index[i].search(query[i], discrete=klass).numpy()
            else:
                pos[i] = index[i].search(query[i]).numpy()
        reverse = np.empty_like(perm)
        reverse[perm] = np.arange(S * B)
        return pos, perm, reverse

    return _cebra_multi_loop(sampler.sample_prior, conditional, MULTI_STEPS, MULTI_BATCH, seed)


@functools.cache
def ours(name: str) -> Draws:
    return ours_draws(case(name))


@functools.cache
def theirs(name: str) -> Draws:
    c = case(name)
    if name in ("multi-delta", "multi-mixed"):
        return cebra_composed_multi(c)
    return cebra_multi(c) if c.multi else cebra_single(c)


# ----------------------------------------------------------------------------- statistics
def homogeneity_p(a: np.ndarray, b: np.ndarray, min_count: int = 10) -> float:
    """p-value of a two-sample chi-square test that the integer codes a and b have one distribution
    (cells with fewer than min_count draws in a and b together are pooled into one cell)."""
    n = int(max(a.max(), b.max())) + 1
    ca, cb = np.bincount(a, minlength=n), np.bincount(b, minlength=n)
    sparse = (ca + cb) < min_count
    ca = np.append(ca[~sparse], ca[sparse].sum())
    cb = np.append(cb[~sparse], cb[sparse].sum())
    keep = (ca + cb) > 0
    if keep.sum() < 2:
        return 1.0
    return float(stats.chi2_contingency(np.stack([ca[keep], cb[keep]]), correction=False)[1])


def assert_same(what: str, ours_cols: list, theirs_cols: list) -> None:
    """The joint distribution of integer columns (one code per combination) is the same in both samples."""
    n = len(ours_cols[0])
    codes = np.zeros(n + len(theirs_cols[0]), np.int64)
    for a, b in zip(ours_cols, theirs_cols):  # one code per combination of the columns' values
        values, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
        codes = codes * len(values) + inverse.reshape(-1)
    p = homogeneity_p(codes[:n], codes[n:])
    assert p > ALPHA, f"{what}: ours and CEBRA's differ (chi-square homogeneity p = {p:.3g} <= {ALPHA})"


def quantile_bins(o: np.ndarray, t: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin both samples on the quantiles of CEBRA's."""
    edges = np.unique(np.quantile(t, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(edges, o, side="right"), np.searchsorted(edges, t, side="right")


def time_bins(idx: np.ndarray, session: np.ndarray, lengths, bins: int = TIME_BINS) -> np.ndarray:
    return idx * bins // np.asarray(lengths)[session]


# ----------------------------------------------------------------------------- the comparisons
def check_prior(o: Draws, t: Draws, lengths, stop=None, drop_o=None, drop_t=None) -> None:
    """References and negatives: in range, reaching both ends (to a few samples), the same distribution over time per
    session, negatives independent of references. `stop`: the exclusive upper end per session (default
    its length); drop_o / drop_t: masks of draws left out of the time histograms."""
    stop = np.asarray(lengths if stop is None else stop)
    for field in ("ref", "neg"):
        for d, who in ((o, "ours"), (t, "CEBRA's")):
            idx, s = getattr(d, field), getattr(d, field + "_s")
            assert (idx >= 0).all() and (idx < stop[s]).all(), f"{field} outside [0, {stop.tolist()}) ({who})"
            for k in range(len(stop)):
                here = idx[s == k]
                # within `slack` samples of both ends: missed with probability < 2 exp(-25) by a uniform prior
                slack = int(np.ceil(25 * stop[k] / len(here)))
                assert here.min() < slack and here.max() >= stop[k] - slack, (
                    f"{field} does not reach both ends [0, {stop[k]}) of session {k} "
                    f"({who}: {here.min()} .. {here.max()})")
        keep_o = np.ones(len(o.ref), bool) if drop_o is None else ~drop_o[field]
        keep_t = np.ones(len(t.ref), bool) if drop_t is None else ~drop_t[field]
        assert_same(f"{field} over time",
                    [o.ref_s[keep_o], time_bins(getattr(o, field), o.ref_s, stop)[keep_o]],
                    [t.ref_s[keep_t], time_bins(getattr(t, field), t.ref_s, stop)[keep_t]])
    keep_o = np.ones(len(o.ref), bool) if drop_o is None else ~(drop_o["ref"] | drop_o["neg"])
    keep_t = np.ones(len(t.ref), bool) if drop_t is None else ~(drop_t["ref"] | drop_t["neg"])
    def joint(d, keep):
        return [d.ref_s[keep], time_bins(d.ref, d.ref_s, stop, 6)[keep], time_bins(d.neg, d.neg_s, stop, 6)[keep]]

    assert_same("negatives given references", joint(o, keep_o), joint(t, keep_t))


def _label_rows(labels: list[np.ndarray], idx, session):
    offsets = np.cumsum([0] + [len(x) for x in labels])[:-1]
    return np.concatenate(labels)[offsets[session] + idx].astype(np.float64)


def check_positive_label(o: Draws, t: Draws, c: Case, keep_o=None, keep_t=None) -> None:
    """label[pos] - label[ref] jointly with label[ref] and the reference's session (and class, mixed);
    then that difference jointly with the positive's session. Continuous columns in quantile bins (16 for
    the difference and 6 for the reference with one column, 8 and 3 each with two), flag columns by value."""
    keep_o = slice(None) if keep_o is None else keep_o
    keep_t = slice(None) if keep_t is None else keep_t
    cols_o, cols_t = [o.ref_s[keep_o]], [t.ref_s[keep_t]]
    if c.kind == "mixed":
        cols_o.append(_label_rows([d[:, None] for d in c.discrete], o.ref, o.ref_s)[keep_o, 0])
        cols_t.append(_label_rows([d[:, None] for d in c.discrete], t.ref, t.ref_s)[keep_t, 0])
    ref_o, ref_t = _label_rows(c.continuous, o.ref, o.ref_s)[keep_o], _label_rows(c.continuous, t.ref, t.ref_s)[keep_t]
    diff_o = _label_rows(c.continuous, o.pos, o.pos_s)[keep_o] - ref_o
    diff_t = _label_rows(c.continuous, t.pos, t.pos_s)[keep_t] - ref_t
    pooled = np.concatenate(c.continuous)
    flags = [j for j in range(pooled.shape[1]) if len(np.unique(pooled[:, j])) <= 16]
    searched = [j for j in range(pooled.shape[1]) if j not in flags]
    n_ref, n_diff = (6, 16) if len(searched) == 1 else (3, 8)
    diff_cols_o, diff_cols_t = [], []
    for j in searched:
        a, b = quantile_bins(ref_o[:, j], ref_t[:, j], n_ref)
        cols_o.append(a), cols_t.append(b)
        a, b = quantile_bins(diff_o[:, j], diff_t[:, j], n_diff)
        diff_cols_o.append(a), diff_cols_t.append(b)
    for j in flags:
        cols_o.append(np.rint(ref_o[:, j]).astype(int)), cols_t.append(np.rint(ref_t[:, j]).astype(int))
        diff_cols_o.append(np.rint(diff_o[:, j]).astype(int)), diff_cols_t.append(np.rint(diff_t[:, j]).astype(int))
    assert_same("label[pos] - label[ref] given label[ref]", cols_o + diff_cols_o, cols_t + diff_cols_t)
    if c.multi:
        assert_same("label[pos] - label[ref] given the positive's session",
                    [o.pos_s[keep_o]] + diff_cols_o, [t.pos_s[keep_t]] + diff_cols_t)


def check_time_offsets(o: Draws, t: Draws, keep_o=None, keep_t=None) -> None:
    """pos - ref in samples (clipped to +-60) for the pairs in one session."""
    keep_o = (o.pos_s == o.ref_s) & (True if keep_o is None else keep_o)
    keep_t = (t.pos_s == t.ref_s) & (True if keep_t is None else keep_t)
    assert_same("pos - ref time offsets", [np.clip(o.pos - o.ref, -60, 60)[keep_o]],
                [np.clip(t.pos - t.ref, -60, 60)[keep_t]])


def check_sessions(o: Draws, t: Draws, c: Case) -> None:
    """Each session supplies exactly B positives per step; the positive's session given the reference's
    (about 1/S in the same session) is the same."""
    S, B = len(c.lengths), MULTI_BATCH
    for d, who in ((o, "ours"), (t, "CEBRA's")):
        per_step = np.stack([np.bincount(step, minlength=S) for step in d.pos_s.reshape(-1, S * B)])
        assert (per_step == B).all(), f"not B positives per session per step ({who})"
    assert_same("positive's session given the reference's", [o.ref_s, o.pos_s], [t.ref_s, t.pos_s])
    same = (o.pos_s == o.ref_s).mean()
    assert abs(same - 1 / S) < 5 * np.sqrt(1 / S * (1 - 1 / S) / len(o.ref)), f"same-session rate {same:.3f}"


def _class_rank(discrete: list[np.ndarray]):
    """Per session: each sample's rank among the samples of its class, in time order, and its class's count."""
    ranks, counts = [], []
    for d in discrete:
        rank = np.zeros(len(d), np.int64)
        for k in np.unique(d):
            rank[d == k] = np.arange((d == k).sum())
        ranks.append(rank)
        counts.append(np.bincount(d)[d])
    return np.concatenate(ranks), np.concatenate(counts)


def check_same_class(o: Draws, t: Draws, c: Case) -> None:
    for d, who in ((o, "ours"), (t, "CEBRA's")):
        k_ref = _label_rows([x[:, None] for x in c.discrete], d.ref, d.ref_s)[:, 0]
        k_pos = _label_rows([x[:, None] for x in c.discrete], d.pos, d.pos_s)[:, 0]
        same = (k_ref == k_pos).mean()
        assert same == 1.0, f"the positive shares the reference's class in {100 * same:.2f} % of the pairs ({who})"


def check_discrete(o: Draws, t: Draws, c: Case) -> None:
    """Classes of references and negatives per session; the positive of the reference's class (100 %),
    uniform among that class's samples in its session (deciles of its rank: against CEBRA and against the
    exact uniform expectation) and independent of the reference (joint deciles, single session)."""
    cls = [x[:, None] for x in c.discrete]
    for field in ("ref", "neg"):
        s_o, s_t = getattr(o, field + "_s"), getattr(t, field + "_s")
        assert_same(f"class of {field}", [s_o, _label_rows(cls, getattr(o, field), s_o)[:, 0].astype(int)],
                    [s_t, _label_rows(cls, getattr(t, field), s_t)[:, 0].astype(int)])
    check_same_class(o, t, c)
    rank, count = _class_rank(c.discrete)
    offsets = np.cumsum([0] + c.lengths)[:-1]

    def decile(idx, s):
        row = offsets[s] + idx
        return rank[row] * 10 // count[row]

    k_o = _label_rows(cls, o.pos, o.pos_s)[:, 0].astype(int)
    k_t = _label_rows(cls, t.pos, t.pos_s)[:, 0].astype(int)
    assert_same("positive's rank within its class", [o.pos_s, k_o, decile(o.pos, o.pos_s)],
                [t.pos_s, k_t, decile(t.pos, t.pos_s)])
    if not c.multi:
        assert_same("positive's rank given the reference's", [k_o, decile(o.ref, o.ref_s), decile(o.pos, o.pos_s)],
                    [k_t, decile(t.ref, t.ref_s), decile(t.pos, t.pos_s)])
    # our positives against the exact expectation: decile j of class k holds #{r : r*10//n_k = j} samples
    observed, expected = [], []
    for s, d in enumerate(c.discrete):
        for k in np.unique(d):
            n_k = (d == k).sum()
            sel = (o.pos_s == s) & (k_o == k)
            observed.append(np.bincount(decile(o.pos[sel], o.pos_s[sel]), minlength=10))
            expected.append(np.bincount(np.arange(n_k) * 10 // n_k, minlength=10) / n_k * sel.sum())
    p = stats.chisquare(np.concatenate(observed), np.concatenate(expected)).pvalue
    assert p > ALPHA, f"positive not uniform within its class (chi-square p = {p:.3g})"


def point_mass(c: Case, d: Draws, field: str) -> tuple[np.ndarray, int]:
    """The sample that takes a missing class value's share of the balanced prior: the most frequent one."""
    idx = getattr(d, field)
    top = int(np.bincount(idx).argmax())
    return idx == top, top


def check_mixed(o: Draws, t: Draws, c: Case) -> None:
    """Class-balanced prior: each class value 0 .. K-1 with probability 1/K (exact expectation and against
    CEBRA), the missing value 2's share on one sample of class 3 (CEBRA's: the first of class 3 in numpy's
    unstable argsort, here not the earliest; ours: the earliest, so the two samples differ and each is left
    out of the comparisons over time), uniform within the class elsewhere (time bins); the positive of the
    reference's class (100 %) and nearest to label + delta within it (the label difference given the class
    and label of the reference, references other than that sample)."""
    K = max(MIXED_VALUES) + 1
    expected = np.array([sum(1 for v in range(K) if min(x for x in MIXED_VALUES if x >= v) == k) / K
                         for k in MIXED_VALUES])
    cls = [x[:, None] for x in c.discrete]
    drop_o, drop_t = {}, {}
    for field in ("ref", "neg"):
        k_o = _label_rows(cls, getattr(o, field), o.ref_s)[:, 0].astype(int)
        k_t = _label_rows(cls, getattr(t, field), t.ref_s)[:, 0].astype(int)
        assert_same(f"class of {field}", [k_o], [k_t])
        counts = np.array([(k_o == k).sum() for k in MIXED_VALUES])
        p = stats.chisquare(counts, expected * len(k_o)).pvalue
        assert p > ALPHA, f"class of {field} not balanced ({counts / len(k_o)} vs {expected}, p = {p:.3g})"
        for d, drop in ((o, drop_o), (t, drop_t)):
            mask, top = point_mass(c, d, field)
            n3 = (c.discrete[0] == 3).sum()
            share = 1 / K + 1 / (K * n3)
            assert c.discrete[0][top] == 3 and abs(mask.mean() - share) < 5 * np.sqrt(share / len(mask)), \
                f"the missing value's share is not on one sample of the next class ({mask.mean():.3f} vs {share:.3f})"
            drop[field] = mask
    check_prior(o, t, c.lengths, drop_o=drop_o, drop_t=drop_t)
    check_same_class(o, t, c)
    check_positive_label(o, t, c, keep_o=~drop_o["ref"], keep_t=~drop_t["ref"])
    check_time_offsets(o, t, keep_o=~drop_o["ref"], keep_t=~drop_t["ref"])


def check_time(o: Draws, t: Draws, c: Case) -> None:
    """CEBRA-Time: references and negatives uniform over [0, T - time_offsets) of their session, the
    positive exactly time_offsets samples later in the reference's session."""
    for d, who in ((o, "ours"), (t, "CEBRA's")):
        assert (d.pos_s == d.ref_s).all() and (d.pos - d.ref == DELTA).all(), f"pos - ref != {DELTA} ({who})"
    check_prior(o, t, c.lengths, stop=[n - DELTA for n in c.lengths])


def compare(name: str, o: Draws, t: Draws) -> None:
    c = case(name)
    if c.kind == "time":
        return check_time(o, t, c)
    if c.kind == "mixed" and not c.multi:
        return check_mixed(o, t, c)
    check_prior(o, t, c.lengths)
    if c.multi:
        check_sessions(o, t, c)
    if c.kind == "discrete":
        return check_discrete(o, t, c)
    if c.kind == "mixed":
        check_same_class(o, t, c)
    check_positive_label(o, t, c)
    check_time_offsets(o, t)


# ----------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("name", ["time_delta-track", "time_delta-track+flags", "time_delta-openfield"])
def test_time_delta_single_session(name):
    """CEBRA's TimedeltaDistribution (ContinuousDataLoader, conditional='time_delta') on a 1-D position, the
    demo's position + two running flags, and an open field's x, y: references and negatives over time,
    label[pos] - label[ref] given label[ref], pos - ref time offsets."""
    compare(name, ours(name), theirs(name))


def test_time_single_session():
    """CEBRA's TimeContrastive (conditional='time'): pos - ref = time_offsets exactly; references and
    negatives uniform over [0, T - time_offsets), the same as CEBRA's."""
    compare("time-track", ours("time-track"), theirs("time-track"))


@pytest.mark.parametrize("name", ["delta-track", "delta-openfield"])
def test_delta_single_session(name):
    """CEBRA's DeltaNormalDistribution (conditional='delta', delta = 5 cm on the track, 2 cm in the open
    field): the positive nearest to label[ref] + N(0, delta^2) per column."""
    compare(name, ours(name), theirs(name))


def test_discrete_single_session():
    """CEBRA's DiscreteEmpirical (DiscreteDataLoader, a discrete label alone), classes of 60 / 30 / 10 %:
    the empirical class prior, positives of the same class, uniform within it and independent of the
    reference."""
    compare("discrete", ours("discrete"), theirs("discrete"))


@pytest.mark.parametrize("name", ["mixed-track", "mixed-openfield"])
def test_mixed_single_session(name):
    """CEBRA's MixedTimeDeltaDistribution (MixedDataLoader, a discrete and a continuous label), class values
    0, 1, 3 (value 2 has no sample) on a 1-D position and on x, y: the class-balanced prior, positives of the
    same class nearest to label + delta within it."""
    compare(name, ours(name), theirs(name))


def test_time_delta_multi_session():
    """CEBRA's MultisessionSampler (ContinuousMultiSessionDataLoader), 4 rat-track sessions of 1500-3000
    samples (one rat runs twice as fast), B per session: references and negatives per session, the
    positive's session (exactly B per session, ~1/S the reference's), the label difference given the
    reference's label and session (deltas pooled over sessions) and given the positive's session."""
    compare("multi-time_delta", ours("multi-time_delta"), theirs("multi-time_delta"))


def test_discrete_multi_session():
    """CEBRA's DiscreteMultisessionSampler, 4 sessions with different class frequencies: references and
    negatives uniform over time per session (empirical classes), the positive's session, the positive of the
    reference's class and uniform among that class's samples in its session."""
    compare("multi-discrete", ours("multi-discrete"), theirs("multi-discrete"))


@pytest.mark.parametrize("name", ["multi-delta", "multi-mixed"])
def test_documented_multi_session_definitions(name):
    """A deliberate difference: CEBRA 0.6.1 has no multi-session 'delta' (it uses time_delta) and no
    multi-session mixed sampler. sampling.py defines them: the positive nearest to label[ref] + N(0, delta^2)
    in the permuted session, or nearest to label[ref] + delta among the samples of the reference's class in
    the permuted session. Compared with those definitions built from CEBRA's parts (cebra_composed_multi)."""
    compare(name, ours(name), theirs(name))


def test_documented_multi_session_time():
    """A deliberate difference: CEBRA refuses multi-session without labels and ignores conditional='time'
    with them. sampling.py's definition: references and negatives uniform over [0, T_s - time_offsets) in
    every session (B each), the positive time_offsets later in the reference's own session, no permutation."""
    c = case("multi-time")
    o = ours("multi-time")
    assert (o.pos_s == o.ref_s).all() and (o.pos - o.ref == DELTA).all()
    stop = np.array(c.lengths) - DELTA
    for field in ("ref", "neg"):
        idx, s = getattr(o, field), getattr(o, field + "_s")
        assert (idx >= 0).all() and (idx < stop[s]).all()
        counts = np.bincount(s * TIME_BINS + time_bins(idx, s, stop), minlength=len(stop) * TIME_BINS)
        exact = np.concatenate([np.bincount(np.arange(n) * TIME_BINS // n, minlength=TIME_BINS) / n for n in stop])
        p = stats.chisquare(counts, exact * len(idx) / len(stop)).pvalue
        assert p > ALPHA, f"{field} not uniform over [0, T_s - {DELTA}) (p = {p:.3g})"
    assert (np.bincount(o.ref_s) == MULTI_STEPS * MULTI_BATCH).all()


def test_discrete_label_ignores_the_conditional():
    """CEBRA's estimator gives a discrete label alone to DiscreteDataLoader whatever the conditional;
    sampling.py's docstring says the same ('a discrete label alone (any conditional)')."""
    c = case("discrete")
    sampler = make_sampler(c.labels(), conditional="time", time_offset=DELTA, delta=None, seed=0, device="cpu",
                           multi=False)
    assert sampler.kind == "discrete"


def test_cebra_float32_search_is_nearest_only_to_its_rounding():
    """A deliberate difference (nearest.py: exact float64 distances). The estimator hands CEBRA float32 labels
    and its argmin of |x|^2 + |q|^2 - 2 x.q in float32 picks, among labels closer than its rounding error, the
    one whose rounded value is least (the earliest on ties). On the sampler's queries (the rat track's
    position + flags): CEBRA's float64 search returns exactly our sample; its float32 search returns another in
    over 5 % of the queries, never nearer than ours and farther only within 4 float32 ulps of |x|^2 + |q|^2,
    mostly an earlier sample; which is why the distributions of positive times then differ (p < 1e-10),
    while those on float64 labels agree (test_time_delta_single_session)."""
    labels = torch.from_numpy(track(T, 1))
    g = torch.Generator().manual_seed(5)
    table = torch.cat([torch.zeros(DELTA, 3), labels[DELTA:] - labels[:-DELTA]])
    ref, k = torch.randint(0, T, (20_000,), generator=g), torch.randint(0, T, (20_000,), generator=g)
    query = labels[ref] + table[k]
    ours_idx = NearestLabelIndex([labels]).nearest(query, torch.zeros(len(query), dtype=torch.long))
    assert torch.equal(ContinuousIndex(labels.double()).search(query.double()), ours_idx)
    theirs32 = ContinuousIndex(labels).search(query)
    dist = lambda i: ((labels[i].double() - query.double()) ** 2).sum(1)  # noqa: E731
    d_ours, d_theirs = dist(ours_idx), dist(theirs32)
    assert (d_ours <= d_theirs).all()
    scale = (labels[theirs32].double() ** 2).sum(1) + (query.double() ** 2).sum(1)
    assert (d_theirs - d_ours <= 4 * 2.0**-23 * scale).all()
    differ = theirs32 != ours_idx
    assert differ.float().mean() > 0.05
    assert (theirs32[differ] < ours_idx[differ]).float().mean() > 0.6
    # what it does to the draws: CEBRA's TimedeltaDistribution on the float32 labels, against ours
    c = case("time_delta-track+flags")
    dist32 = TimedeltaDistribution(torch.from_numpy(c.continuous[0]), DELTA)
    dist32.generator.manual_seed(100), dist32.prior.generator.manual_seed(101)
    refs = dist32.sample_prior(STEPS * BATCH // 2)
    pos32 = torch.cat([dist32.sample_conditional(r) for r in refs.split(BATCH)]).numpy()
    o = ours("time_delta-track+flags")
    assert homogeneity_p(o.pos * TIME_BINS // T, pos32 * TIME_BINS // T) < 1e-10


# ----------------------------------------------------------------------------- broken samplers
def _rng(seed=99):
    return np.random.default_rng(seed)


def _nearest(labels: np.ndarray, queries: np.ndarray, classes=None, query_class=None) -> np.ndarray:
    """Brute-force nearest label (float64), optionally among the samples of each query's class."""
    lab = torch.from_numpy(labels).double()
    out = []
    for i in range(0, len(queries), 4096):
        d = torch.cdist(torch.from_numpy(queries[i:i + 4096]).double(), lab).square()
        if classes is not None:
            d[torch.from_numpy(query_class[i:i + 4096])[:, None] != torch.from_numpy(classes)[None]] = float("inf")
        out.append(d.argmin(1).numpy())
    return np.concatenate(out)


def _time_delta_queries(c: Case, d: Draws, rng, own_session: bool = False) -> np.ndarray:
    """label[ref] + a delta row: the single-session table (zero rows first), the pooled multi-session one,
    or (own_session) the reference's own session's."""
    if not c.multi:
        x = c.continuous[0]
        table = np.concatenate([np.zeros_like(x[:DELTA]), x[DELTA:] - x[:-DELTA]])
        return x[d.ref].astype(np.float64) + table[rng.integers(0, len(table), len(d.ref))]
    tables = [x[DELTA:] - x[:-DELTA] for x in c.continuous]
    pooled = np.concatenate(tables)
    query = _label_rows(c.continuous, d.ref, d.ref_s)
    if not own_session:
        return query + pooled[rng.integers(0, len(pooled), len(d.ref))]
    for s, table in enumerate(tables):
        sel = d.ref_s == s
        query[sel] += table[rng.integers(0, len(table), sel.sum())]
    return query


def _within_class(discrete: np.ndarray, klass: np.ndarray, rng, first_half: bool = False) -> np.ndarray:
    """A sample uniform among those of each class (or among the earlier half of them)."""
    out = np.empty(len(klass), np.int64)
    for k in np.unique(klass):
        members = np.flatnonzero(discrete == k)
        if first_half:
            members = members[:max(1, len(members) // 2)]
        sel = klass == k
        out[sel] = members[rng.integers(0, len(members), sel.sum())]
    return out


def _uniform_positive(c, d):
    return d.replace(pos=_rng().integers(0, np.asarray(c.lengths)[d.pos_s]))


def _time_offset_off_by_one(c, d):
    return ours_draws(c, time_offset=DELTA + 1)


def _flags_ignored(c, d):
    x = c.continuous[0]
    return d.replace(pos=_nearest(x[:, :1], _time_delta_queries(c, d, _rng())[:, :1]))


def _no_delta(c, d):
    x = c.continuous[0]
    return d.replace(pos=_nearest(x, x[d.ref]))


def _negatives_near_references(c, d):
    return d.replace(neg=np.clip(d.ref + _rng().integers(-50, 51, len(d.ref)), 0, c.lengths[0] - 1))


def _prior_without_the_last_offset(c, d):
    rng = _rng()
    return d.replace(ref=rng.integers(0, c.lengths[0] - DELTA, len(d.ref)), neg=rng.integers(0, c.lengths[0] - DELTA,
                                                                                              len(d.ref)))


def _time_one_step_late(c, d):
    return d.replace(pos=d.ref + DELTA + 1)


def _time_prior_over_all_samples(c, d):
    ref = _rng().integers(0, c.lengths[0], len(d.ref))
    return d.replace(ref=ref, pos=ref + DELTA)


def _delta_std_10_percent_wider(c, d):
    return ours_draws(c, delta=c.delta * 1.1)


def _positive_of_any_class(c, d):
    return _uniform_positive(c, d)


def _positive_from_first_half_of_class(c, d):
    rng = _rng()
    pos = d.pos.copy()
    for s, disc in enumerate(c.discrete):
        sel = d.pos_s == s
        pos[sel] = _within_class(disc, disc[d.pos[sel]], rng, first_half=True)
    return d.replace(pos=pos)


def _balanced_prior(c, d):
    disc, rng = c.discrete[0], _rng()
    values = np.unique(disc)
    ref = _within_class(disc, rng.choice(values, len(d.ref)), rng)
    neg = _within_class(disc, rng.choice(values, len(d.ref)), rng)
    return d.replace(ref=ref, neg=neg, pos=_within_class(disc, disc[ref], rng))


def _empirical_prior(c, d):
    rng, disc = _rng(), c.discrete[0]
    d = d.replace(ref=rng.integers(0, c.lengths[0], len(d.ref)), neg=rng.integers(0, c.lengths[0], len(d.ref)))
    pos = _nearest(c.continuous[0], _time_delta_queries(c, d, rng), disc, disc[d.ref])
    return d.replace(pos=pos)


def _positive_ignores_class(c, d):
    return d.replace(pos=_nearest(c.continuous[0], _time_delta_queries(c, d, _rng())))


def _positive_uniform_in_class(c, d):
    disc = c.discrete[0]
    return d.replace(pos=_within_class(disc, disc[d.ref], _rng()))


def _missing_share_spread(c, d):
    rng, disc = _rng(), c.discrete[0]
    mask, _ = point_mass(c, d, "ref")
    ref = d.ref.copy()
    ref[mask] = _within_class(disc, np.full(mask.sum(), 3), rng)
    return d.replace(ref=ref)


def _positive_in_own_session(c, d):
    rng = _rng()
    if c.kind == "discrete":
        pos = d.pos.copy()
        for s, disc in enumerate(c.discrete):
            sel = d.ref_s == s
            pos[sel] = _within_class(disc, disc[d.ref[sel]], rng)
        return d.replace(pos=pos, pos_s=d.ref_s.copy())
    query = _time_delta_queries(c, d, rng)
    pos = d.pos.copy()
    for s, x in enumerate(c.continuous):
        sel = d.ref_s == s
        pos[sel] = _nearest(x, query[sel])
    return d.replace(pos=pos, pos_s=d.ref_s.copy())


def _deltas_of_own_session(c, d):
    query = _time_delta_queries(c, d, _rng(), own_session=True)
    pos = d.pos.copy()
    for s, x in enumerate(c.continuous):
        sel = d.pos_s == s
        pos[sel] = _nearest(x, query[sel])
    return d.replace(pos=pos)


BROKEN = [
    ("time_delta-track", _uniform_positive, "label\\[pos\\]"),
    ("time_delta-track", _time_offset_off_by_one, "label\\[pos\\]"),
    ("time_delta-track", _negatives_near_references, "negatives given references"),
    ("time_delta-track", _prior_without_the_last_offset, "reach both ends"),
    ("time_delta-track+flags", _flags_ignored, "label\\[pos\\]"),
    ("time_delta-openfield", _time_offset_off_by_one, "label\\[pos\\]"),
    ("time_delta-track+flags", _time_offset_off_by_one, "label\\[pos\\]"),
    ("time_delta-openfield", _no_delta, "label\\[pos\\]"),
    ("time-track", _time_one_step_late, "pos - ref"),
    ("time-track", _time_prior_over_all_samples, "outside"),
    ("delta-track", _delta_std_10_percent_wider, "label\\[pos\\]"),
    ("delta-openfield", _delta_std_10_percent_wider, "label\\[pos\\]"),
    ("discrete", _positive_of_any_class, "class"),
    ("discrete", _positive_from_first_half_of_class, "rank"),
    ("discrete", _balanced_prior, "ref over time|class of ref"),
    ("mixed-track", _empirical_prior, "class of ref"),
    ("mixed-track", _positive_ignores_class, "class"),
    ("mixed-track", _positive_uniform_in_class, "label\\[pos\\]"),
    ("mixed-track", _time_offset_off_by_one, "label\\[pos\\]"),
    ("mixed-openfield", _time_offset_off_by_one, "label\\[pos\\]"),
    ("mixed-openfield", _positive_uniform_in_class, "label\\[pos\\]"),
    ("mixed-openfield", _missing_share_spread, "share"),
    ("multi-time_delta", _positive_in_own_session, "session"),
    ("multi-time_delta", _deltas_of_own_session, "label\\[pos\\]"),
    ("multi-time_delta", _uniform_positive, "label\\[pos\\]"),
    ("multi-time_delta", _time_offset_off_by_one, "label\\[pos\\]"),
    ("multi-delta", _delta_std_10_percent_wider, "label\\[pos\\]"),
    ("multi-discrete", _positive_in_own_session, "session"),
    ("multi-discrete", _positive_from_first_half_of_class, "rank"),
]


@pytest.mark.parametrize("name, breakage, reason", BROKEN,
                         ids=[f"{n}-{b.__name__.strip('_')}" for n, b, _ in BROKEN])
def test_broken_sampler_is_rejected(name, breakage, reason):
    """The comparison of each test rejects a sampler broken in one way (the draws of ours, altered), for the
    intended reason."""
    broken = breakage(case(name), ours(name))
    with pytest.raises(AssertionError, match=reason):
        compare(name, broken, theirs(name))
