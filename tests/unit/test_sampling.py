"""time_delta sampling: the nearest-label index against brute force (sorted, k-d tree and brute-force
searches, with and without a class restriction), and the single/multi-session samplers."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from cebra_core.engine.nearest import NearestLabelIndex
from cebra_core.engine.sampling import Labels, MultiSessionSampler, SingleSessionSampler
from cebra_core.sessions.simulate import simulate_session

DELTA = 10


# ----------------------------------------------------------------------------- helpers
def brute_force(labels: torch.Tensor, queries: torch.Tensor, chunk: int = 2048, k: int = 16):
    """Nearest label over all T samples, float64: (argmin (first on ties), min squared distance, number tied).

    Every distinct label row is considered. A matmul-form distance (error ~1e-15 of the norms) shortlists the
    k closest rows, and the shortlist provably holds every row within 1e-12 of the minimum; those are compared
    with the exact sum of squared differences. Ties go to the row's earliest time index, as argmin does.
    """
    lab = labels.double()
    T = lab.shape[0]
    rows, inverse = torch.unique(lab, dim=0, return_inverse=True)
    first = torch.full((rows.shape[0],), T).scatter_reduce(0, inverse, torch.arange(T), "amin")
    count = torch.bincount(inverse, minlength=rows.shape[0])
    rows_sq = (rows * rows).sum(1)
    k = min(k, rows.shape[0])
    index, best, ties = [], [], []
    for q in queries.double().split(chunk):
        approx = torch.addmm(rows_sq[None], q, rows.T, alpha=-2.0)  # |x|^2 - 2 x.q (+|q|^2, constant per query)
        shortlist, candidate = approx.topk(k, dim=1, largest=False, sorted=True)
        tol = 1e-12 * (1.0 + (q * q).sum(1) + rows_sq.max())
        assert k == rows.shape[0] or (shortlist[:, -1] - shortlist[:, 0] > tol).all(), "shortlist too short"
        exact = ((rows[candidate] - q[:, None]) ** 2).sum(-1)
        m = exact.min(dim=1).values
        at_min = exact == m[:, None]
        index.append(torch.where(at_min, first[candidate], T).min(dim=1).values)
        best.append(m)
        ties.append((count[candidate] * at_min).sum(dim=1))
    return torch.cat(index), torch.cat(best), torch.cat(ties)


def sq_dist(labels: torch.Tensor, index: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    return ((labels[index].double() - queries.double()) ** 2).sum(-1)


def time_delta(labels: torch.Tensor) -> torch.Tensor:
    return labels[DELTA:] - labels[:-DELTA]


def make_queries(labels: torch.Tensor, n: int, seed: int, outside: bool = True) -> torch.Tensor:
    """label[r] + delta[k] (the sampler's queries), some pushed outside the range and to flags 2 / -1."""
    g = torch.Generator().manual_seed(seed)
    delta = time_delta(labels)
    r = torch.randint(0, labels.shape[0], (n,), generator=g)
    k = torch.randint(0, delta.shape[0], (n,), generator=g)
    q = labels[r] + delta[k]
    if outside:
        lo, hi = labels[:, 0].min(), labels[:, 0].max()
        span = hi - lo
        q[:400, 0] = lo - span * torch.rand(400, generator=g)  # below the range
        q[400:800, 0] = hi + span * torch.rand(400, generator=g)  # above the range
        if labels.shape[1] > 1:
            q[800:1200, 1:] = torch.randint(-1, 3, (400, labels.shape[1] - 1), generator=g).float()
    return q


def realistic_labels(name="buddy", scale=0.3, seed=0) -> torch.Tensor:
    return torch.from_numpy(simulate_session(name, scale=scale, seed=seed).labels)


def assert_matches_brute_force(index: NearestLabelIndex, labels: torch.Tensor, queries: torch.Tensor, session=None):
    if session is None:
        session = torch.zeros(queries.shape[0], dtype=torch.long)
    got = index.nearest(queries, session)
    want, best, ties = brute_force(labels, queries)
    assert got.dtype == torch.long and got.shape == (queries.shape[0],)
    assert torch.equal(sq_dist(labels, got, queries), best)  # a truly nearest sample
    assert torch.equal(got, want)  # the same one as argmin: the earliest among exact ties
    return ties


# ----------------------------------------------------------------------------- NearestLabelIndex
def test_nearest_realistic_labels_with_flags():
    labels = realistic_labels()  # (1973, 3) position + one-hot direction flags
    queries = make_queries(labels, 20_000, seed=1)
    assert ((queries[:, 1:] == 2) | (queries[:, 1:] == -1)).any(dim=1).sum() > 100
    index = NearestLabelIndex([labels])
    assert index.mode == "sorted"  # the fast path is the one under test
    ties = assert_matches_brute_force(index, labels, queries)
    assert (ties > 1).sum() > 500  # pauses clipped at the track ends: many exact ties are exercised


def test_nearest_random_continuous_1d_labels():
    g = torch.Generator().manual_seed(2)
    labels = torch.randn(2500, 1, generator=g).cumsum(0).float()
    queries = make_queries(labels, 20_000, seed=3)
    index = NearestLabelIndex([labels])
    assert index.mode == "sorted"
    ties = assert_matches_brute_force(index, labels, queries)
    inside = (queries[:, 0] > labels.min()) & (queries[:, 0] < labels.max())
    assert (ties[inside] == 1).float().mean() > 0.99  # mostly unique nearest: the same index as argmin


def test_nearest_with_many_exact_ties():
    labels = realistic_labels(seed=4)
    labels[:, 0] = torch.round(labels[:, 0] * 100) / 100  # 1 cm bins: ~40 samples share each label
    queries = make_queries(labels, 20_000, seed=5)
    index = NearestLabelIndex([labels])
    assert index.mode == "sorted"
    ties = assert_matches_brute_force(index, labels, queries)
    assert (ties > 1).float().mean() > 0.9


def test_nearest_is_restricted_to_the_target_session():
    sessions = [
        realistic_labels("achilles", scale=0.1, seed=6),
        realistic_labels("buddy", scale=0.25, seed=7),
        realistic_labels("gatsby", scale=0.04, seed=8),
    ]
    sessions[2][:, 0] += 0.3  # different ranges, so a cross-session answer would be visible
    lengths = [s.shape[0] for s in sessions]
    assert len(set(lengths)) == 3
    index = NearestLabelIndex(sessions)
    pooled = torch.cat(sessions)
    queries = make_queries(pooled, 20_000, seed=9)
    target = torch.randint(0, 3, (20_000,), generator=torch.Generator().manual_seed(10))
    got = index.nearest(queries, target)
    for s, lab in enumerate(sessions):
        mask = target == s
        assert got[mask].max() < lengths[s]
        want, best, _ = brute_force(lab, queries[mask])
        assert torch.equal(sq_dist(lab, got[mask], queries[mask]), best)
        assert torch.equal(got[mask], want)


def test_nearest_at_session_and_group_boundaries():
    # A query below a later session's range has, as sorted neighbours, the previous session's last sample;
    # a session with fewer discrete groups than another is padded. Neither may leak into (or crash on) the
    # other session's samples.
    ramp = torch.linspace(0, 1, 1000)
    long_two_groups = torch.stack([ramp, (torch.arange(1000) % 2).float()], 1)
    long_one_group = torch.stack([ramp, torch.ones(1000)], 1)
    short_one_group = torch.stack([torch.linspace(0.5, 1, 50), torch.ones(50)], 1)
    queries = torch.tensor([[0.2, 1.0], [-3.0, 1.0], [0.99, 1.0], [4.0, 0.0], [0.7, 0.0], [0.5, 2.0]])
    for sessions in ([long_one_group, short_one_group], [long_two_groups, short_one_group]):
        index = NearestLabelIndex(sessions)
        assert index.mode == "sorted"
        for s, lab in enumerate(sessions):
            got = index.nearest(queries, torch.full((len(queries),), s))
            want, best, _ = brute_force(lab, queries)
            assert torch.equal(got, want)


def test_nearest_two_continuous_columns_k_d_trees():
    g = torch.Generator().manual_seed(11)
    sessions = [torch.randn(n, 2, generator=g).cumsum(0).float() for n in (1500, 900)]
    index = NearestLabelIndex(sessions)
    assert index.mode == "tree"
    queries = make_queries(torch.cat(sessions), 6000, seed=12)
    target = torch.randint(0, 2, (6000,), generator=g)
    got = index.nearest(queries, target)
    for s, lab in enumerate(sessions):
        mask = target == s
        want, best, _ = brute_force(lab, queries[mask])
        assert torch.equal(sq_dist(lab, got[mask], queries[mask]), best)
        assert torch.equal(got[mask], want)


def test_nearest_fallback_too_many_discrete_groups():
    g = torch.Generator().manual_seed(13)
    position = torch.rand(3000, 1, generator=g)
    codes = torch.randint(0, 8, (3000, 3), generator=g).float()  # 512 combinations > MAX_GROUPS
    labels = torch.cat([position, codes], dim=1)
    index = NearestLabelIndex([labels])
    assert index.mode == "brute"
    assert_matches_brute_force(index, labels, make_queries(labels, 4000, seed=14))


# ----------------------------------------------------------------------------- single session
def single_sampler(labels: torch.Tensor, seed: int | torch.Generator) -> SingleSessionSampler:
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    return SingleSessionSampler(Labels(continuous=labels), conditional="time_delta", time_offset=DELTA, delta=None,
                                generator=generator)


def multi_sampler(labels: list[torch.Tensor], seed: int | torch.Generator) -> MultiSessionSampler:
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    return MultiSessionSampler([Labels(continuous=l) for l in labels], conditional="time_delta", time_offset=DELTA,
                               delta=None, generator=generator)


def test_single_session_delta_table():
    labels = realistic_labels(scale=0.2)
    sampler = single_sampler(labels, 0)
    assert sampler.table.shape == labels.shape
    assert torch.equal(sampler.table[:DELTA], torch.zeros(DELTA, 3))
    assert torch.equal(sampler.table[DELTA:], labels[DELTA:] - labels[:-DELTA])


def test_single_session_references_and_negatives_uniform():
    T, B = 1000, 20_000
    g = torch.Generator().manual_seed(1)
    labels = torch.cat([torch.rand(T, 1, generator=g), (torch.rand(T, 1, generator=g) > 0.5).float()], dim=1)
    batch = single_sampler(labels, 3).sample(B)
    assert batch.reference.shape == batch.positive.shape == batch.negative.shape == (1, B)
    assert batch.positive_order is None
    for idx in (batch.reference[0], batch.negative[0]):
        assert idx.min() == 0 and idx.max() == T - 1  # the full range, no clamping of the sampled index
        counts = np.bincount(idx.numpy() * 10 // T, minlength=10)
        assert stats.chisquare(counts).pvalue > 1e-3
    # negatives are drawn independently of the references
    assert abs(np.corrcoef(batch.reference[0].numpy(), batch.negative[0].numpy())[0, 1]) < 0.03
    assert (batch.reference[0] == batch.negative[0]).float().mean() < 0.01


def test_single_session_positive_is_nearest_to_reference_plus_delta():
    labels = realistic_labels(scale=0.4, seed=2)
    T, B = labels.shape[0], 4096
    generator = torch.Generator().manual_seed(17)
    sampler = single_sampler(labels, generator)
    for _ in range(2):  # the second batch checks the generator advances as replayed
        replay = torch.Generator()
        replay.set_state(generator.get_state())
        batch = sampler.sample(B)
        idx = (torch.rand((1, 2 * B), generator=replay, dtype=torch.float64) * T).long()[0]
        k = (torch.rand((1, B), generator=replay, dtype=torch.float64) * T).long()[0]
        assert torch.equal(batch.reference[0], idx[:B]) and torch.equal(batch.negative[0], idx[B:])
        delta = torch.cat([torch.zeros(DELTA, 3), labels[DELTA:] - labels[:-DELTA]])
        query = labels[batch.reference[0]] + delta[k]
        want, best, _ = brute_force(labels, query)
        assert torch.equal(batch.positive[0], want)
        assert torch.equal(replay.get_state(), generator.get_state())


def test_single_session_seeded():
    labels = realistic_labels(scale=0.2)
    a, b, c = (single_sampler(labels, s).sample(256) for s in (5, 5, 6))
    for field in ("reference", "positive", "negative"):
        assert torch.equal(getattr(a, field), getattr(b, field))
        assert not torch.equal(getattr(a, field), getattr(c, field))


# ----------------------------------------------------------------------------- multi-session
def multi_labels(continuous: bool = False) -> list[torch.Tensor]:
    if continuous:
        g = torch.Generator().manual_seed(21)
        return [
            torch.cat([torch.randn(n, 1, generator=g).cumsum(0), (torch.rand(n, 1, generator=g) > 0.5).float()], 1)
            for n in (700, 1300, 450, 1000)
        ]
    return [
        torch.from_numpy(simulate_session(f"s{i}", shape=(n, 4), seed=i).labels)
        for i, n in enumerate((700, 1300, 450, 1000))
    ]


def test_multi_session_delta_table_has_only_valid_differences():
    labels = multi_labels(continuous=True)
    sampler = multi_sampler(labels, 0)
    assert sampler.table.shape == (sum(l.shape[0] - DELTA for l in labels), 2)
    assert torch.equal(sampler.table, torch.cat([l[DELTA:] - l[:-DELTA] for l in labels]))
    assert (sampler.table != 0).any(dim=1).all()


def test_multi_session_batch_structure_and_session_mixing():
    labels = multi_labels()
    lengths = torch.tensor([l.shape[0] for l in labels])
    S, B = len(labels), 512
    sampler = multi_sampler(labels, 1)
    same, refs = [], [[] for _ in range(S)]
    for _ in range(20):
        batch = sampler.sample(B)
        for name in ("reference", "positive", "negative"):
            idx = getattr(batch, name)
            assert idx.shape == (S, B)
            assert (idx >= 0).all() and (idx < lengths[:, None]).all()
        order = batch.positive_order
        assert order.shape == (S * B,) and torch.equal(order.sort().values, torch.arange(S * B))
        same.append(order // B == torch.arange(S * B) // B)
        for s in range(S):
            refs[s].append(batch.reference[s])
    assert abs(torch.cat(same).float().mean().item() - 1 / S) < 0.02
    for s in range(S):
        idx = torch.cat(refs[s]).numpy()
        assert idx.min() == 0 and idx.max() == lengths[s] - 1
        counts = np.bincount(idx * 10 // lengths[s].item(), minlength=10)
        assert stats.chisquare(counts).pvalue > 1e-3


def test_multi_session_repaired_positive_is_nearest_in_its_session():
    labels = multi_labels()
    lengths = torch.tensor([l.shape[0] for l in labels])
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
    pooled = torch.cat(labels)
    delta = torch.cat([l[DELTA:] - l[:-DELTA] for l in labels])
    S, B = len(labels), 1024
    generator = torch.Generator().manual_seed(2)
    sampler = multi_sampler(labels, generator)
    replay = torch.Generator()
    replay.set_state(generator.get_state())
    batch = sampler.sample(B)
    ref = (torch.rand((S, B), generator=replay, dtype=torch.float64) * lengths[:, None]).long()
    neg = (torch.rand((S, B), generator=replay, dtype=torch.float64) * lengths[:, None]).long()
    k = torch.randint(0, delta.shape[0], (S * B,), generator=replay)
    perm = torch.randperm(S * B, generator=replay)
    assert torch.equal(batch.reference, ref) and torch.equal(batch.negative, neg)
    assert torch.equal(batch.positive_order, torch.argsort(perm))
    query = pooled[(ref + offsets[:, None]).reshape(-1)] + delta[k]  # one per flattened reference row
    slot = batch.positive_order  # row r's partner: flattened positive slot
    pos_session = slot // B
    pos_local = batch.positive.reshape(-1)[slot]
    for s in range(S):
        mask = pos_session == s
        want, best, _ = brute_force(labels[s], query[mask])
        assert torch.equal(pos_local[mask], want)
    # each query's delta may come from any session: k covers the pooled table
    assert k.max() > delta.shape[0] - lengths[-1] + DELTA


def test_multi_session_seeded():
    labels = multi_labels()
    a, b, c = (multi_sampler(labels, s).sample(128) for s in (3, 3, 4))
    for field in ("reference", "positive", "negative", "positive_order"):
        assert torch.equal(getattr(a, field), getattr(b, field))
        assert not torch.equal(getattr(a, field), getattr(c, field))


def test_nearest_two_columns_on_a_grid_breaks_ties_to_the_earliest_sample():
    """Positions on a camera's pixel grid: many distinct rows lie at the same distance from a query;
    the k-d tree search still returns argmin's answer (the earliest of the equally near samples)."""
    g = torch.Generator().manual_seed(31)
    labels = torch.randint(0, 40, (3000, 2), generator=g).float()
    queries = labels[torch.randint(0, 3000, (5000,), generator=g)] + torch.randint(-3, 4, (5000, 2), generator=g).float()
    index = NearestLabelIndex([labels])
    assert index.mode == "tree"
    ties = assert_matches_brute_force(index, labels, queries)
    assert (ties > 1).float().mean() > 0.5


def test_nearest_within_the_query_class():
    """With a discrete label, a query finds the nearest sample of its own class only (CEBRA's mixed
    distribution), in the sorted, k-d tree and brute-force searches alike."""
    g = torch.Generator().manual_seed(32)
    for columns in (1, 2):
        labels = torch.randn(2000, columns, generator=g).cumsum(0).float()
        classes = torch.randint(0, 3, (2000,), generator=g)
        queries = make_queries(labels, 3000, seed=33, outside=False)
        klass = torch.randint(0, 3, (3000,), generator=g)
        for device_mode in ("default", "brute"):
            index = NearestLabelIndex([labels], [classes])
            if device_mode == "brute":
                index.mode = "brute"
            got = index.nearest(queries, torch.zeros(3000, dtype=torch.long), klass)
            assert torch.equal(classes[got], klass)
            for c in range(3):
                rows = torch.nonzero(classes == c).squeeze(1)
                want, _, _ = brute_force(labels[rows], queries[klass == c])
                assert torch.equal(got[klass == c], rows[want])
