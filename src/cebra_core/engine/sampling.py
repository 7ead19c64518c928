"""Contrastive sampling for CEBRA-Behavior with conditional="time_delta" (single- and multi-session).

The distributions are exactly CEBRA 0.6.1's (facts file, section 2):
- references and negatives uniform over time, with replacement, nothing masked;
- query = label[ref] + delta[k], k uniform over an empirical table of time_offsets-step label
  differences; the positive is the sample whose label is nearest (squared L2) to the query.

Where we deliberately differ, and why:
- The nearest label comes from `NearestLabelIndex`, built once: a sorted array per group of the
  label's discrete columns (here the two running-direction flags), searched with
  `searchsorted`. That is O(log T) per query instead of CEBRA's O(T) brute-force argmin, and
  returns the same sample (ties aside; `tests/unit/test_sampling.py`). Labels whose structure does
  not allow it (more than one continuous column) fall back to an exact brute-force search.
- All draws come from one seeded `torch.Generator` on the training device (CEBRA seeds its
  single-session generators from OS entropy and uses numpy's global RNG for multi-session), so
  a fit is reproducible and sampling stays on the GPU.
- The search compares distances in float64, so that ties are exact ties. A training device
  without float64 (Apple's GPU, 'mps') gets its samples from the CPU instead: the generator, the
  labels and the index live there (`sampling_device`), and only the int64 sample indices go to
  the device, once per step. The batches are the ones the same seed draws on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_DISCRETE_VALUES = 16  # a label column with at most this many distinct values is treated as discrete
MAX_GROUPS = 256  # at most this many (session, discrete combination) groups for the sorted index
BRUTE_FORCE_CHUNK = 4096
NO_FLOAT64 = ("mps",)  # device types without float64 tensors (Apple's GPU)


def has_float64(device: str | torch.device) -> bool:
    """Whether tensors on this device can be float64 (Apple's GPU, 'mps', has no float64)."""
    return torch.device(device).type not in NO_FLOAT64


def sampling_device(device: str | torch.device) -> torch.device:
    """Where the sampler of a fit on `device` works: that device, or the CPU where it has no float64."""
    device = torch.device(device)
    return device if has_float64(device) else torch.device("cpu")


@dataclass
class Batch:
    """Sample indices of one training step, per session (local time indices).

    `positive[s]` holds the B positives that session s supplies (searched in its labels and
    embedded by its encoder). `positive_order`, when set, re-pairs them with the references:
    the partner of flattened reference row r is flattened positive row positive_order[r].
    (`AdaptationSampler` fills positive and negative with rows of the trained sessions
    concatenated, as (1, B) and (1, S*B), since their embeddings are looked up.)
    """

    reference: torch.Tensor  # (S, B)
    positive: torch.Tensor  # (S, B)
    negative: torch.Tensor  # (S, B)
    positive_order: torch.Tensor | None = None  # (S*B,) or None when positives are already paired

    def to(self, device: str | torch.device) -> "Batch":
        """The same indices on `device` (the tensors themselves where they are there already)."""
        order = None if self.positive_order is None else self.positive_order.to(device)
        return Batch(self.reference.to(device), self.positive.to(device), self.negative.to(device), order)


class _Placement:
    """Where a sampler works (its generator's device, the host) and where its batches go (the
    training device). `host_side` is true where the training device has no float64: then the host
    must be the CPU."""

    def _place(self, generator: torch.Generator, device: str | torch.device | None) -> None:
        self.generator = generator
        self.host = generator.device
        self.device = self.host if device is None else torch.device(device)
        self.host_side = not has_float64(self.device)
        if self.host_side and self.host.type != "cpu":
            raise ValueError(
                f"a fit on {self.device} (no float64) samples on the CPU: give the sampler a CPU generator, "
                f"not one on {self.host}"
            )


def _column_is_discrete(values: torch.Tensor) -> bool:
    return torch.unique(values).numel() <= MAX_DISCRETE_VALUES


def _combinations(columns: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Number of distinct rows of (T, k) discrete columns, and the group number of each row."""
    combos, group_of = torch.unique(columns, dim=0, return_inverse=True)
    return combos.shape[0], group_of


class NearestLabelIndex:
    """Exact nearest-label search within a chosen session, from an index built once.

    Labels (T_s, d) are split into groups of equal discrete columns (per session); each group
    keeps its continuous column sorted. A query is looked up in every group of its target
    session with one `searchsorted` over a single key array, and the closer of the two
    neighbours per group wins. Ties go to the lowest time index, as torch.argmin does.
    """

    def __init__(self, labels: list[torch.Tensor]):
        self.labels = labels
        self.device = labels[0].device
        pooled = torch.cat(labels)
        dim = pooled.shape[1]
        discrete = [_column_is_discrete(pooled[:, j]) for j in range(dim)]
        continuous = [j for j in range(dim) if not discrete[j]]
        if len(continuous) > 1:
            self.sorted = False  # no 1-D structure to exploit: exact brute force
            return
        self.column = continuous[0] if continuous else 0
        self.other = [j for j in range(dim) if j != self.column]
        self._build(labels)

    def _build(self, labels: list[torch.Tensor]) -> None:
        keys, locals_, starts, ends, sessions = [], [], [], [], []
        lo = min(float(l[:, self.column].min()) for l in labels)
        hi = max(float(l[:, self.column].max()) for l in labels)
        self.low, self.high = lo, hi
        self.span = (hi - lo) + 1.0  # key = group * span + value keeps groups apart
        offset = 0
        for s, lab in enumerate(labels):
            if self.other:
                num_combos, group_of = _combinations(lab[:, self.other])
            else:  # a single continuous column: one group per session
                num_combos, group_of = 1, torch.zeros(lab.shape[0], dtype=torch.long, device=lab.device)
            for g in range(num_combos):
                members = torch.nonzero(group_of == g).squeeze(1)
                values = lab[members, self.column].double()
                order = torch.sort(values, stable=True).indices  # stable: equal values keep time order
                group_id = len(starts)
                keys.append(values[order] + group_id * self.span)
                locals_.append(members[order])
                starts.append(offset)
                offset += members.numel()
                ends.append(offset)
                sessions.append(s)
        self.num_groups = len(starts)
        self.sorted = self.num_groups <= MAX_GROUPS
        if not self.sorted:
            return
        self.keys = torch.cat(keys)
        self.local_index = torch.cat(locals_)
        # first position of each run of equal keys, so a left neighbour maps to its earliest sample
        new_run = torch.ones_like(self.keys, dtype=torch.bool)
        new_run[1:] = self.keys[1:] != self.keys[:-1]
        positions = torch.arange(self.keys.numel(), device=self.device)
        self.run_start = torch.cummax(torch.where(new_run, positions, torch.zeros_like(positions)), 0).values
        self.group_start = torch.tensor(starts, device=self.device)
        self.group_end = torch.tensor(ends, device=self.device)
        group_session = torch.tensor(sessions, device=self.device)
        per_session = [torch.nonzero(group_session == s).squeeze(1) for s in range(len(labels))]
        width = max(g.numel() for g in per_session)
        # pad each session's group list with its own first group: a repeated group changes nothing
        self.session_groups = torch.stack(
            [torch.cat([g, g[:1].expand(width - g.numel())]) for g in per_session]
        )  # (S, G)
        self.all_labels = torch.cat(labels)
        self.session_offset = _session_offsets(labels)[1]

    def nearest(self, queries: torch.Tensor, session: torch.Tensor) -> torch.Tensor:
        """Local time index of the label nearest to each query (Q, d), searched in `session` (Q,)."""
        if not self.sorted:
            return self._brute_force(queries, session)
        groups = self.session_groups[session]  # (Q, G)
        value = queries[:, self.column].double().clamp(self.low, self.high)
        key = groups * self.span + value[:, None]
        right = torch.searchsorted(self.keys, key)  # first key >= query, within or just past the group
        start, end = self.group_start[groups], self.group_end[groups]
        # the neighbours on either side, kept inside the group (the mask drops the ones outside)
        left = self.run_start[torch.maximum(right - 1, start)]
        candidates = torch.stack([left, torch.minimum(right, end - 1)], dim=-1)  # (Q, G, 2)
        ok = torch.stack([right - 1 >= start, right < end], dim=-1)
        local = self.local_index[candidates]
        offset = self.session_offset[session][:, None, None]
        diff = self.all_labels[local + offset].double() - queries.double()[:, None, None, :]
        dist = (diff * diff).sum(-1).masked_fill(~ok, float("inf"))
        flat_dist = dist.reshape(dist.shape[0], -1)
        flat_local = local.reshape(local.shape[0], -1)
        best = flat_dist.min(dim=1, keepdim=True).values
        # ties go to the earliest sample, like argmin over time
        tie_broken = torch.where(flat_dist == best, flat_local, torch.iinfo(torch.long).max)
        return tie_broken.min(dim=1).values

    def _brute_force(self, queries: torch.Tensor, session: torch.Tensor) -> torch.Tensor:
        out = torch.empty(queries.shape[0], dtype=torch.long, device=queries.device)
        for s, lab in enumerate(self.labels):  # fallback path only
            rows = torch.nonzero(session == s).squeeze(1)
            for chunk in rows.split(BRUTE_FORCE_CHUNK):
                out[chunk] = brute_force_nearest(lab, queries[chunk])
        return out


def brute_force_nearest(labels: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Exact argmin over all T labels of the squared distance to each query (first index on ties)."""
    dist = torch.cdist(queries.double(), labels.double()).square()
    return dist.argmin(dim=1)


def _session_offsets(labels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Lengths T_s of the sessions and the row where each starts when they are concatenated."""
    lengths = torch.tensor([l.shape[0] for l in labels], device=labels[0].device)
    return lengths, lengths.cumsum(0) - lengths


def _pooled_deltas(labels: list[torch.Tensor], time_offset: int) -> torch.Tensor:
    """label[t] - label[t - time_offset] of every session, valid differences only, concatenated."""
    return torch.cat([l[time_offset:] - l[:-time_offset] for l in labels])


def _uniform_indices(lengths: torch.Tensor, batch: int, generator: torch.Generator) -> torch.Tensor:
    """(S, B) indices, uniform over [0, T_s) in each session s, drawn as floor(U * T_s) like CEBRA."""
    u = torch.rand((lengths.numel(), batch), generator=generator, device=lengths.device, dtype=torch.float64)
    return (u * lengths[:, None]).long()


class SingleSessionSampler(_Placement):
    """CEBRA's single-session ContinuousDataLoader with TimedeltaDistribution.

    Works on the generator's device; `device` (default: the same) is where its batches go."""

    def __init__(self, labels: torch.Tensor, time_offset: int, generator: torch.Generator,
                 device: str | torch.device | None = None):  # fmt: skip
        self._place(generator, device)
        labels = labels.to(self.host)
        self.labels = labels
        self.delta = torch.zeros_like(labels)  # the first time_offset rows stay zero, as in CEBRA
        self.delta[time_offset:] = labels[time_offset:] - labels[:-time_offset]
        self.index = NearestLabelIndex([labels])
        self.length = torch.tensor([labels.shape[0]], device=labels.device)

    def sample(self, batch: int) -> Batch:
        indices = _uniform_indices(self.length, 2 * batch, self.generator)[0]
        reference, negative = indices[:batch], indices[batch:]
        k = _uniform_indices(self.length, batch, self.generator)[0]
        query = self.labels[reference] + self.delta[k]
        session = torch.zeros(batch, dtype=torch.long, device=query.device)
        positive = self.index.nearest(query, session)
        return Batch(reference[None], positive[None], negative[None]).to(self.device)


class MultiSessionSampler(_Placement):
    """CEBRA's MultisessionSampler: positives from a uniformly permuted choice of sessions.

    Works on the generator's device; `device` (default: the same) is where its batches go."""

    def __init__(self, labels: list[torch.Tensor], time_offset: int, generator: torch.Generator,
                 device: str | torch.device | None = None):  # fmt: skip
        self._place(generator, device)
        labels = [l.to(self.host) for l in labels]
        self.num_sessions = len(labels)
        self.lengths, self.offsets = _session_offsets(labels)
        self.all_labels = torch.cat(labels)
        # one pooled table of valid differences only (no zero rows, unlike single-session)
        self.delta = _pooled_deltas(labels, time_offset)
        self.index = NearestLabelIndex(labels)

    def sample(self, batch: int) -> Batch:
        num = self.num_sessions * batch
        reference = _uniform_indices(self.lengths, batch, self.generator)
        negative = _uniform_indices(self.lengths, batch, self.generator)
        k = torch.randint(0, self.delta.shape[0], (num,), generator=self.generator, device=self.delta.device)
        query = self.all_labels[(reference + self.offsets[:, None]).reshape(-1)] + self.delta[k]
        permutation = torch.randperm(num, generator=self.generator, device=query.device)
        # slot (i, j) takes query permutation[i*B + j] and finds its positive in session i
        slot_session = torch.arange(self.num_sessions, device=query.device).repeat_interleave(batch)
        positive = self.index.nearest(query[permutation], slot_session).reshape(self.num_sessions, batch)
        return Batch(reference, positive, negative, positive_order=torch.argsort(permutation)).to(self.device)


def make_sampler(
    labels: list[torch.Tensor], time_offset: int, seed: int, device: str | torch.device, multi: bool
) -> SingleSessionSampler | MultiSessionSampler:
    """The sampler of a fit on `device`, seeded, on `sampling_device(device)` (its generator: `.generator`)."""
    generator = torch.Generator(device=sampling_device(device)).manual_seed(seed)
    if multi:
        return MultiSessionSampler(labels, time_offset, generator, device)
    return SingleSessionSampler(labels[0], time_offset, generator, device)


class AdaptationSampler(_Placement):
    """Samples for fitting a new session into a trained multi-session space (`CEBRA.adapt`).

    References come from the new session; the positive of each reference is the nearest label
    (to label[ref] + delta) in a uniformly chosen trained session, and negatives are uniform in
    every trained session, B each. Positives and negatives are returned as rows of the trained
    sessions concatenated in order, since their (frozen) embeddings are looked up, not computed.
    """

    def __init__(self, new_labels: torch.Tensor, trained_labels: list[torch.Tensor], time_offset: int,
                 generator: torch.Generator, device: str | torch.device | None = None):  # fmt: skip
        self._place(generator, device)
        new_labels = new_labels.to(self.host)
        trained_labels = [l.to(self.host) for l in trained_labels]
        self.new_labels = new_labels
        self.lengths, self.offsets = _session_offsets(trained_labels)
        self.delta = _pooled_deltas(trained_labels + [new_labels], time_offset)
        self.index = NearestLabelIndex(trained_labels)

    def sample(self, batch: int) -> Batch:
        device = self.new_labels.device
        reference = _uniform_indices(torch.tensor([self.new_labels.shape[0]], device=device), batch, self.generator)[0]
        negative = (_uniform_indices(self.lengths, batch, self.generator) + self.offsets[:, None]).reshape(-1)
        k = torch.randint(0, self.delta.shape[0], (batch,), generator=self.generator, device=device)
        query = self.new_labels[reference] + self.delta[k]
        session = torch.randint(0, self.lengths.numel(), (batch,), generator=self.generator, device=device)
        positive = self.index.nearest(query, session) + self.offsets[session]
        return Batch(reference[None], positive[None], negative[None]).to(self.device)
