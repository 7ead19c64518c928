"""Contrastive sampling: references, positives and negatives, as CEBRA 0.6.1 draws them for each
kind of label and conditional, single- and multi-session (facts file, section 2; CEBRA's
`cebra/distributions`).

Single session (CEBRA's loader for the labels it is given):
- continuous labels, ``time_delta``: references and negatives uniform over time; the positive is
  the sample whose label is nearest to label[ref] + delta[k], delta an empirical table of
  ``time_offsets``-step label differences (its first ``time_offsets`` rows zero), k uniform;
- continuous labels, ``delta``: the positive is nearest to label[ref] + N(0, delta^2) per column;
- ``time`` (or no labels, CEBRA-Time): references and negatives uniform over [0, T - time_offsets),
  the positive ``time_offsets`` samples after the reference;
- a discrete label alone (any conditional, as CEBRA): references and negatives uniform over time (so the
  classes' empirical frequencies), the positive uniform among the samples of the reference's class;
- a discrete and continuous labels (any conditional, as CEBRA): references and negatives
  class-balanced (each class value 0 … K-1 with probability 1/K, uniform within it; a value with
  no sample passes its share to the next class, as CEBRA's interpolated prior does), the positive
  the sample of the reference's class nearest to cont[ref] + delta[k], k uniform over all T rows.

Multi-session: B references and B negatives uniform over time in every session; the positive of a
reference lands in a uniformly permuted session (each session supplies B positives, CEBRA's
`MultisessionSampler`): nearest to label[ref] + delta (deltas pooled over sessions, valid
differences only) for continuous labels; uniform among that session's samples of the reference's
class for a discrete label (CEBRA's `DiscreteMultisessionSampler`). Where CEBRA 0.6.1 has no
multi-session sampler, or ignores the conditional, the natural one is defined (docs/engine.md):
- a discrete and continuous labels: nearest to cont[ref] + delta among the samples of the
  reference's class in the permuted session;
- ``delta``: nearest to label[ref] + N(0, delta^2) in the permuted session (CEBRA uses time_delta);
- ``time``: the positive ``time_offsets`` samples later in the reference's own session (CEBRA
  refuses multi-session without labels): no session is tied to another but by the negatives.

Where we deliberately differ, and why:
- The nearest label comes from `cebra_core.engine.nearest.NearestLabelIndex`, built once (sorted
  arrays or k-d trees) instead of CEBRA's O(T) brute-force argmin; it returns the sample an exact
  (float64) argmin returns. CEBRA searches in float32, which cannot tell labels apart that are closer
  than its rounding (about 1 mm on the 1.6 m track) and then takes the earliest of them
  (`tests/unit/test_sampling_cebra.py` measures the difference).
- All draws come from one seeded `torch.Generator` on the sampling device (CEBRA seeds its
  single-session generators from OS entropy and uses numpy's and torch's global RNGs elsewhere),
  so a fit is reproducible and sampling stays on the GPU.
- A training device without float64 (Apple's GPU, 'mps') gets its samples from the CPU: the
  generator, the labels and the index live there (`sampling_device`), and only the int64 sample
  indices go to the device, once per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cebra_core.engine.nearest import NearestLabelIndex

CONDITIONALS = ("time_delta", "time", "delta")
NO_FLOAT64 = ("mps",)  # device types without float64 tensors (Apple's GPU)


def has_float64(device: str | torch.device) -> bool:
    """Whether tensors on this device can be float64 (Apple's GPU, 'mps', has no float64)."""
    return torch.device(device).type not in NO_FLOAT64


def sampling_device(device: str | torch.device) -> torch.device:
    """Where the sampler of a fit on `device` works: that device, or the CPU where it has no float64."""
    device = torch.device(device)
    return device if has_float64(device) else torch.device("cpu")


@dataclass
class Labels:
    """One session's labels for sampling: ``continuous`` (T, c) float and/or ``discrete`` (T,) long;
    neither (CEBRA-Time without labels) needs the session's ``length``."""

    continuous: torch.Tensor | None = None
    discrete: torch.Tensor | None = None
    length: int | None = None

    def to(self, device) -> "Labels":
        return Labels(*(None if x is None else x.to(device) for x in (self.continuous, self.discrete)), self.length)

    def __len__(self) -> int:
        for labels in (self.continuous, self.discrete):
            if labels is not None:
                return len(labels)
        if self.length is None:
            raise ValueError("labels without any column need the session's length")
        return self.length


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


# --------------------------------------------------------------------------------- draws


def _uniform_indices(lengths: torch.Tensor, batch: int, generator: torch.Generator) -> torch.Tensor:
    """(S, B) indices, uniform over [0, T_s) in each session s, drawn as floor(U * T_s) like CEBRA."""
    u = torch.rand((lengths.numel(), batch), generator=generator, device=lengths.device, dtype=torch.float64)
    return (u * lengths[:, None]).long()


def _deltas(continuous: torch.Tensor, time_offset: int, zero_rows: bool) -> torch.Tensor:
    """label[t] - label[t - time_offset]; the first time_offset rows zero (single session) or left out."""
    valid = continuous[time_offset:] - continuous[:-time_offset]
    if not zero_rows:
        return valid
    return torch.cat([torch.zeros_like(continuous[:time_offset]), valid])


class ClassIndex:
    """The samples of each class of a discrete label in time order (CEBRA's sorted index and cdf),
    for drawing uniformly within a class or class-balanced."""

    def __init__(self, classes: torch.Tensor):
        self.order = torch.sort(classes, stable=True).indices
        counts = torch.bincount(classes)
        self.counts = counts
        self.cdf = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        self.num_values = counts.numel()  # K = the largest class + 1

    def within(self, klass: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A sample uniform among those of each class in ``klass``."""
        u = torch.rand(klass.shape, generator=generator, device=klass.device, dtype=torch.float64)
        position = (self.cdf[klass] + u * self.counts[klass]).long()
        return self.order[position]

    def balanced(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n samples with every class value 0 … K-1 equally likely (CEBRA's DiscreteUniform prior)."""
        total = int(self.cdf[-1])
        u = torch.rand(n, generator=generator, device=self.cdf.device, dtype=torch.float64) * self.num_values
        value = u.floor().long().clamp(max=self.num_values - 1)
        position = self.cdf[value] + (u - value) * (self.cdf[value + 1] - self.cdf[value])
        return self.order[position.long().clamp(max=total - 1)]


# --------------------------------------------------------------------------------- placement


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


def _check_kind(labels: list[Labels], conditional: str) -> str:
    """Which distribution the labels and conditional give: time, time_delta, delta, discrete or mixed."""
    if conditional not in CONDITIONALS:
        raise ValueError(f"conditional={conditional!r} is not supported; supported: {', '.join(CONDITIONALS)}")
    first = labels[0]
    for s, lab in enumerate(labels):
        if (lab.continuous is None) != (first.continuous is None) or (lab.discrete is None) != (first.discrete is None):
            raise ValueError(f"session {s} has other kinds of labels than session 0 (continuous and/or discrete); "
                             "every session needs the same")
    if first.discrete is not None:  # CEBRA's discrete and mixed loaders, whatever the conditional
        return "discrete" if first.continuous is None else "mixed"
    if conditional == "time" or first.continuous is None:
        return "time"
    return conditional


# --------------------------------------------------------------------------------- single session


class SingleSessionSampler(_Placement):
    """CEBRA's single-session loaders (module docstring): one session, B references, positives and
    negatives per step. Works on the generator's device; ``device`` is where its batches go."""

    def __init__(self, labels: Labels, *, conditional: str, time_offset: int, delta: float | None,
                 generator: torch.Generator, device: str | torch.device | None = None):  # fmt: skip
        self._place(generator, device)
        self.kind = _check_kind([labels], conditional)
        labels = labels.to(self.host)
        self.length = torch.tensor([len(labels)], device=self.host)
        self.time_offset, self.delta = time_offset, delta
        if self.kind == "time":
            if len(labels) <= time_offset:
                raise ValueError(f"{len(labels)} samples leave no positive {time_offset} samples later (time_offsets)")
            return
        if self.kind == "delta" and delta is None:
            raise ValueError("conditional='delta' needs delta, the standard deviation of the positives' label noise")
        self.continuous = labels.continuous
        if labels.discrete is not None:
            self.classes = ClassIndex(labels.discrete)
            self.discrete = labels.discrete
        if labels.continuous is not None:
            self.table = _deltas(labels.continuous, time_offset, zero_rows=True)
            classes = [labels.discrete] if self.kind == "mixed" else None
            self.index = NearestLabelIndex([labels.continuous], classes)

    def sample(self, batch: int) -> Batch:
        if self.kind == "mixed":
            reference = self.classes.balanced(batch, self.generator)
            negative = self.classes.balanced(batch, self.generator)
        elif self.kind == "time":
            both = _uniform_indices(self.length - self.time_offset, 2 * batch, self.generator)[0]
            reference, negative = both[:batch], both[batch:]
        else:
            both = _uniform_indices(self.length, 2 * batch, self.generator)[0]
            reference, negative = both[:batch], both[batch:]
        positive = self._positive(reference)
        return Batch(reference[None], positive[None], negative[None]).to(self.device)

    def _positive(self, reference: torch.Tensor) -> torch.Tensor:
        session = torch.zeros_like(reference)
        if self.kind == "time":
            return reference + self.time_offset
        if self.kind == "discrete":
            return self.classes.within(self.discrete[reference], self.generator)
        if self.kind == "delta":
            noise = torch.randn(self.continuous[reference].shape, generator=self.generator, device=reference.device,
                                dtype=self.continuous.dtype)
            return self.index.nearest(self.continuous[reference] + self.delta * noise, session)
        k = _uniform_indices(self.length, len(reference), self.generator)[0]
        query = self.continuous[reference] + self.table[k]
        return self.index.nearest(query, session, self.discrete[reference] if self.kind == "mixed" else None)


# --------------------------------------------------------------------------------- multi-session


class MultiSessionSampler(_Placement):
    """CEBRA's multi-session samplers (module docstring): B references and negatives in every
    session, positives in a uniformly permuted session. Works on the generator's device; ``device``
    is where its batches go."""

    def __init__(self, labels: list[Labels], *, conditional: str, time_offset: int, delta: float | None,
                 generator: torch.Generator, device: str | torch.device | None = None):  # fmt: skip
        self._place(generator, device)
        self.kind = _check_kind(labels, conditional)
        labels = [lab.to(self.host) for lab in labels]
        self.num_sessions = len(labels)
        self.lengths = torch.tensor([len(lab) for lab in labels], device=self.host)
        self.offsets = self.lengths.cumsum(0) - self.lengths
        self.time_offset, self.delta = time_offset, delta
        if self.kind == "time":
            short = [s for s, lab in enumerate(labels) if len(lab) <= time_offset]
            if short:
                raise ValueError(f"sessions {short} have no sample {time_offset} samples after another (time_offsets)")
            return
        if self.kind == "delta" and delta is None:
            raise ValueError("conditional='delta' needs delta, the standard deviation of the positives' label noise")
        if labels[0].discrete is not None:
            self.discrete = torch.cat([lab.discrete for lab in labels])
            self.classes = [ClassIndex(lab.discrete) for lab in labels]
            _check_shared_classes([lab.discrete for lab in labels])
        if labels[0].continuous is not None:
            self.continuous = torch.cat([lab.continuous for lab in labels])
            # one pooled table of valid differences only (no zero rows, unlike single-session)
            self.table = torch.cat([_deltas(lab.continuous, time_offset, zero_rows=False) for lab in labels])
            classes = [lab.discrete for lab in labels] if self.kind == "mixed" else None
            self.index = NearestLabelIndex([lab.continuous for lab in labels], classes)

    def sample(self, batch: int) -> Batch:
        lengths = self.lengths - self.time_offset if self.kind == "time" else self.lengths
        reference = _uniform_indices(lengths, batch, self.generator)
        negative = _uniform_indices(lengths, batch, self.generator)
        if self.kind == "time":
            return Batch(reference, reference + self.time_offset, negative).to(self.device)
        num = self.num_sessions * batch
        rows = (reference + self.offsets[:, None]).reshape(-1)  # the references as rows of all sessions
        if self.kind != "discrete":
            if self.kind == "delta":
                noise = torch.randn(self.continuous[rows].shape, generator=self.generator, device=rows.device,
                                    dtype=self.continuous.dtype)
                query = self.continuous[rows] + self.delta * noise
            else:
                k = torch.randint(0, self.table.shape[0], (num,), generator=self.generator, device=rows.device)
                query = self.continuous[rows] + self.table[k]
        permutation = torch.randperm(num, generator=self.generator, device=rows.device)
        # slot (i, j) takes query permutation[i*B + j] and finds its positive in session i
        slot_session = torch.arange(self.num_sessions, device=rows.device).repeat_interleave(batch)
        if self.kind == "discrete":
            klass = self.discrete[rows[permutation]]
            positive = torch.cat([self.classes[s].within(klass[s * batch:(s + 1) * batch], self.generator)
                                  for s in range(self.num_sessions)])
        else:
            klass = self.discrete[rows[permutation]] if self.kind == "mixed" else None
            positive = self.index.nearest(query[permutation], slot_session, klass)
        order = torch.argsort(permutation)
        return Batch(reference, positive.reshape(self.num_sessions, batch), negative, positive_order=order).to(self.device)


def _check_shared_classes(discrete: list[torch.Tensor]) -> None:
    """Every class of any session in every session (a positive must exist in each)."""
    present = [set(torch.unique(d).tolist()) for d in discrete]
    everything = set().union(*present)
    for s, classes in enumerate(present):
        missing = sorted(everything - classes)
        if missing:
            raise ValueError(f"session {s} has no sample of class(es) {missing}, which other sessions have: "
                             "multi-session sampling needs every class in every session")


def make_sampler(labels: list[Labels], *, conditional: str, time_offset: int, delta: float | None, seed: int,
                 device: str | torch.device, multi: bool) -> SingleSessionSampler | MultiSessionSampler:
    """The sampler of a fit on `device`, seeded, on `sampling_device(device)` (its generator: `.generator`)."""
    generator = torch.Generator(device=sampling_device(device)).manual_seed(seed)
    options = dict(conditional=conditional, time_offset=time_offset, delta=delta, generator=generator, device=device)
    if multi:
        return MultiSessionSampler(labels, **options)
    return SingleSessionSampler(labels[0], **options)


# --------------------------------------------------------------------------------- a new session


class AdaptationSampler(_Placement):
    """Samples for fitting a new session into a trained multi-session space (`CEBRA.adapt`).

    References come from the new session; the positive of each reference is drawn in a uniformly
    chosen trained session as the multi-session sampler draws it there (nearest to label + delta,
    of the same class, or both); negatives are uniform in every trained session, B each.
    Positives and negatives are returned as rows of the trained sessions concatenated in order,
    since their (frozen) embeddings are looked up, not computed. With ``own_negatives``, B more
    negatives are uniform in the new session itself, as a multi-session fit with it would draw them;
    they come last, as rows ``sum(trained lengths) + t`` (embedded by the new encoder, not looked up).
    """

    def __init__(self, new: Labels, trained: list[Labels], *, conditional: str, time_offset: int,
                 delta: float | None, generator: torch.Generator, device: str | torch.device | None = None,
                 own_negatives: bool = False):  # fmt: skip
        self._place(generator, device)
        self.own_negatives = own_negatives
        self.kind = _check_kind([*trained, new], conditional)
        if self.kind == "time":
            raise ValueError("adapt() places a new session by its labels: it needs labels and a conditional other "
                             "than 'time'")
        new = new.to(self.host)
        trained = [lab.to(self.host) for lab in trained]
        self.new = new
        self.lengths = torch.tensor([len(lab) for lab in trained], device=self.host)
        self.offsets = self.lengths.cumsum(0) - self.lengths
        self.delta = delta
        if new.discrete is not None:
            _check_shared_classes([lab.discrete for lab in trained] + [new.discrete])
            self.classes = [ClassIndex(lab.discrete) for lab in trained]
        if new.continuous is not None:
            self.table = torch.cat([_deltas(lab.continuous, time_offset, zero_rows=False) for lab in [*trained, new]])
            classes = [lab.discrete for lab in trained] if self.kind == "mixed" else None
            self.index = NearestLabelIndex([lab.continuous for lab in trained], classes)

    def _trained_sessions(self, batch: int) -> torch.Tensor:
        """The trained session each positive is drawn in, uniform."""
        return torch.randint(0, self.lengths.numel(), (batch,), generator=self.generator, device=self.host)

    def sample(self, batch: int) -> Batch:
        device = self.host
        reference = _uniform_indices(torch.tensor([len(self.new)], device=device), batch, self.generator)[0]
        negative = (_uniform_indices(self.lengths, batch, self.generator) + self.offsets[:, None]).reshape(-1)
        if self.own_negatives:
            own = _uniform_indices(torch.tensor([len(self.new)], device=device), batch, self.generator)[0]
            negative = torch.cat([negative, own + self.lengths.sum()])
        if self.kind == "discrete":
            session = self._trained_sessions(batch)
            klass = self.new.discrete[reference]
            positive = torch.empty_like(reference)
            for s, index in enumerate(self.classes):
                rows = torch.nonzero(session == s).squeeze(1)
                positive[rows] = index.within(klass[rows], self.generator)
        else:
            if self.kind == "delta":
                noise = torch.randn(self.new.continuous[reference].shape, generator=self.generator, device=device,
                                    dtype=self.new.continuous.dtype)
                query = self.new.continuous[reference] + self.delta * noise
            else:
                k = torch.randint(0, self.table.shape[0], (batch,), generator=self.generator, device=device)
                query = self.new.continuous[reference] + self.table[k]
            session = self._trained_sessions(batch)  # after the query: a continuous label's draws keep their order
            klass = self.new.discrete[reference] if self.kind == "mixed" else None
            positive = self.index.nearest(query, session, klass)
        positive = positive + self.offsets[session]
        return Batch(reference[None], positive[None], negative[None]).to(self.device)
