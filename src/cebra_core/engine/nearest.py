"""The exact nearest label: which sample of a session has the label nearest (squared L2) to a query,
as CEBRA's brute-force argmin over all T samples finds it (ties to the earliest sample), from an
index built once.

Labels (T_s, d) are split into groups: per session, per class of the discrete label when one is
given (a query then searches only its own class: CEBRA's mixed distribution), and per combination
of the columns with few distinct values (the running-direction flags). A query is looked up in every
group of its session (of its class), and the nearest candidate of all groups wins:

- with one column of many values, each group keeps it sorted and one `searchsorted` over a single
  key array finds the two neighbours of every query in every group: O(log T);
- with two or more such columns (an open field's x, y), each group keeps a k-d tree of its distinct
  rows (scipy's `cKDTree`, on the CPU): O(log T) too; its candidates are ranked again with the exact
  float64 distance, so ties go to the earliest sample as with argmin. A device other than the CPU
  searches by brute force on that device instead (fast there);
- too many groups: brute force.
Distances are compared in float64, so that ties are exact ties.
"""

from __future__ import annotations

import numpy as np
import torch

MAX_DISCRETE_VALUES = 16  # a column with at most this many distinct values groups the samples
MAX_GROUPS = 256  # at most this many groups for the sorted search
BRUTE_FORCE_CHUNK = 4096
TREE_CANDIDATES = 8  # distinct rows a k-d tree returns for a query near a tie, before the exact ranking
TIE_TOLERANCE = 1e-9  # relative: two rows this near in the tree's distance are ranked exactly


def _column_is_grouping(values: torch.Tensor) -> bool:
    return torch.unique(values).numel() <= MAX_DISCRETE_VALUES


def brute_force_nearest(labels: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Exact argmin over all T labels of the squared distance to each query (first index on ties)."""
    dist = torch.cdist(queries.double(), labels.double(), compute_mode="donot_use_mm_for_euclid_dist").square()
    return dist.argmin(dim=1)


def session_offsets(labels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Lengths T_s of the sessions and the row where each starts when they are concatenated."""
    lengths = torch.tensor([len(l) for l in labels], device=labels[0].device)
    return lengths, lengths.cumsum(0) - lengths


class _Group:
    """One group's samples: its session, class, local time indices and (k-d) search structure."""

    def __init__(self, session: int, klass: int | None, members: torch.Tensor):
        self.session, self.klass, self.members = session, klass, members


class NearestLabelIndex:
    """Exact nearest-label search within a chosen session (and class), from an index built once.

    ``labels[s]`` is session s's (T_s, d) continuous labels; ``classes[s]``, when given, its (T_s,)
    discrete label, and a query then searches only the samples of its own class.
    """

    def __init__(self, labels: list[torch.Tensor], classes: list[torch.Tensor] | None = None):
        self.labels = labels
        self.classes = classes
        self.device = labels[0].device
        self.all_labels = torch.cat(labels)
        self.session_offset = session_offsets(labels)[1]
        pooled = self.all_labels
        dim = pooled.shape[1]
        grouping = [j for j in range(dim) if _column_is_grouping(pooled[:, j])]
        self.searched = [j for j in range(dim) if j not in grouping]  # the columns searched within a group
        self.groups = self._groups(labels, classes, grouping)
        self.mode = ("sorted" if len(self.searched) <= 1 else "tree" if self.device.type == "cpu" else "brute")
        if len(self.groups) > MAX_GROUPS:
            self.mode = "brute"
        if self.mode == "sorted":
            self._build_sorted()
        elif self.mode == "tree":
            self._build_trees()

    @staticmethod
    def _groups(labels, classes, grouping) -> list[_Group]:
        groups = []
        for s, lab in enumerate(labels):
            keys = lab[:, grouping]
            if classes is not None:
                keys = torch.cat([classes[s][:, None].to(lab.dtype), keys], dim=1)
            if keys.shape[1] == 0:
                groups.append(_Group(s, None, torch.arange(len(lab), device=lab.device)))
                continue
            combos, group_of = torch.unique(keys, dim=0, return_inverse=True)
            for g in range(combos.shape[0]):
                klass = int(combos[g, 0]) if classes is not None else None
                groups.append(_Group(s, klass, torch.nonzero(group_of == g).squeeze(1)))
        return groups

    # ------------------------------------------------------------------ sorted (one searched column)
    def _build_sorted(self) -> None:
        column = self.searched[0] if self.searched else 0
        self.column = column
        lo = float(self.all_labels[:, column].min())
        hi = float(self.all_labels[:, column].max())
        self.low, self.high = lo, hi
        self.span = (hi - lo) + 1.0  # key = group * span + value keeps groups apart
        keys, locals_, starts, ends = [], [], [], []
        offset = 0
        for g, group in enumerate(self.groups):
            values = self.labels[group.session][group.members, column].double()
            order = torch.sort(values, stable=True).indices  # stable: equal values keep time order
            keys.append(values[order] + g * self.span)
            locals_.append(group.members[order])
            starts.append(offset)
            offset += group.members.numel()
            ends.append(offset)
        self.keys = torch.cat(keys)
        self.local_index = torch.cat(locals_)
        # first position of each run of equal keys, so a left neighbour maps to its earliest sample
        new_run = torch.ones_like(self.keys, dtype=torch.bool)
        new_run[1:] = self.keys[1:] != self.keys[:-1]
        positions = torch.arange(self.keys.numel(), device=self.device)
        self.run_start = torch.cummax(torch.where(new_run, positions, torch.zeros_like(positions)), 0).values
        self.group_start = torch.tensor(starts, device=self.device)
        self.group_end = torch.tensor(ends, device=self.device)
        self.group_session = torch.tensor([g.session for g in self.groups], device=self.device)
        self.group_class = torch.tensor([-1 if g.klass is None else g.klass for g in self.groups], device=self.device)
        per_session = [torch.nonzero(self.group_session == s).squeeze(1) for s in range(len(self.labels))]
        width = max(g.numel() for g in per_session)
        # pad each session's group list with its own first group: a repeated group changes nothing
        self.session_groups = torch.stack([torch.cat([g, g[:1].expand(width - g.numel())]) for g in per_session])

    def _nearest_sorted(self, queries, session, query_class) -> torch.Tensor:
        groups = self.session_groups[session]  # (Q, G)
        value = queries[:, self.column].double().clamp(self.low, self.high)
        key = groups * self.span + value[:, None]
        right = torch.searchsorted(self.keys, key)  # first key >= query, within or just past the group
        start, end = self.group_start[groups], self.group_end[groups]
        # the neighbours on either side, kept inside the group (the mask drops the ones outside)
        left = self.run_start[torch.maximum(right - 1, start)]
        candidates = torch.stack([left, torch.minimum(right, end - 1)], dim=-1)  # (Q, G, 2)
        ok = torch.stack([right - 1 >= start, right < end], dim=-1)
        if query_class is not None:  # only the query's own class
            ok &= (self.group_class[groups] == query_class[:, None])[..., None]
        local = self.local_index[candidates]
        offset = self.session_offset[session][:, None, None]
        diff = self.all_labels[local + offset].double() - queries.double()[:, None, None, :]
        dist = (diff * diff).sum(-1).masked_fill(~ok, float("inf"))
        return _earliest_of_nearest(dist.reshape(dist.shape[0], -1), local.reshape(local.shape[0], -1))

    # ------------------------------------------------------------------ k-d trees (several searched columns)
    def _build_trees(self) -> None:
        from scipy.spatial import cKDTree  # CPU only; imported where the index needs it

        for group in self.groups:
            rows = self.labels[group.session][group.members].double().numpy()
            distinct, first = np.unique(rows, axis=0, return_index=True)  # first: the earliest sample of each row
            group.rows = torch.from_numpy(distinct)
            group.first = group.members[torch.from_numpy(first)]
            group.tree = cKDTree(distinct[:, self.searched])

    def _nearest_in_groups(self, queries, session, query_class, search) -> torch.Tensor:
        """Per group, ``search(group, queries of the group's session) -> (the nearest sample's local index
        (Q,), its exact squared distance (Q,))``; then the nearest of all groups, earliest on ties."""
        best = torch.full((len(queries),), float("inf"), dtype=torch.float64, device=queries.device)
        winner = torch.full((len(queries),), torch.iinfo(torch.long).max, dtype=torch.long, device=queries.device)
        for group in self.groups:
            mask = session == group.session
            if query_class is not None:
                mask &= query_class == group.klass
            rows = torch.nonzero(mask).squeeze(1)
            if rows.numel() == 0:
                continue
            choice, d = search(group, queries[rows])
            better = (d < best[rows]) | ((d == best[rows]) & (choice < winner[rows]))
            best[rows] = torch.where(better, d, best[rows])
            winner[rows] = torch.where(better, choice, winner[rows])
        return winner

    def _tree_search(self, group: _Group, queries: torch.Tensor):
        """The nearest distinct row by the k-d tree, its two nearest compared: where they are as near
        (a tie, common on a camera's pixel grid), every row that near is found and ranked exactly."""
        q = queries.double()
        searched = q[:, self.searched].numpy()
        k = min(2, len(group.rows))
        tree_dist, index = group.tree.query(searched, k=k)
        tree_dist, index = tree_dist.reshape(len(q), k), np.asarray(index).reshape(len(q), k)
        nearest = torch.from_numpy(index[:, 0])
        local = group.first[nearest]
        dist = ((group.rows[nearest] - q) ** 2).sum(-1)  # exact, every column
        if k == 1:
            return local, dist
        tied = np.flatnonzero(tree_dist[:, 1] <= tree_dist[:, 0] * (1 + TIE_TOLERANCE))
        k = min(TREE_CANDIDATES, len(group.rows))
        while tied.size:
            _, index = group.tree.query(searched[tied], k=k)
            index = torch.from_numpy(np.asarray(index).reshape(len(tied), k))
            exact = ((group.rows[index] - q[tied, None, :]) ** 2).sum(-1)
            # the k-th candidate farther than the best: no row beyond the k can tie with it
            done = (exact[:, -1] > exact.min(dim=1).values).numpy() | (k == len(group.rows))
            rows = torch.from_numpy(tied[done])
            local[rows] = _earliest_of_nearest(exact[done], group.first[index[done]])
            dist[rows] = exact[done].min(dim=1).values
            tied, k = tied[~done], min(4 * k, len(group.rows))
        return local, dist

    def _brute_search(self, group: _Group, queries: torch.Tensor):
        rows = self.labels[group.session][group.members].double()
        local, dist = [], []
        for chunk in queries.double().split(BRUTE_FORCE_CHUNK):
            d = torch.cdist(chunk, rows, compute_mode="donot_use_mm_for_euclid_dist").square()
            best, at = d.min(dim=1)  # the first of equal minima: the earliest sample (members are in time order)
            local.append(group.members[at])
            dist.append(best)
        return torch.cat(local), torch.cat(dist)

    # ------------------------------------------------------------------ the search
    def nearest(self, queries: torch.Tensor, session: torch.Tensor, query_class: torch.Tensor | None = None) -> torch.Tensor:
        """Local time index of the label nearest to each query (Q, d), searched in ``session`` (Q,)
        and, with classes, among the samples of ``query_class`` (Q,) only."""
        if (query_class is None) != (self.classes is None):
            raise ValueError("give query classes exactly when the index was built with classes")
        if self.mode == "sorted":
            return self._nearest_sorted(queries, session, query_class)
        if self.mode == "tree":
            return self._nearest_in_groups(queries, session, query_class, self._tree_search)
        return self._nearest_in_groups(queries, session, query_class, self._brute_search)


def _earliest_of_nearest(dist: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """Per row, the candidate at the smallest distance, the earliest sample on ties (as argmin over time)."""
    best = dist.min(dim=1, keepdim=True).values
    return torch.where(dist == best, local, torch.iinfo(torch.long).max).min(dim=1).values
