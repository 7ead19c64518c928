"""A session's behaviour: the label columns every session carries, and their kind.

``continuous`` columns are real-valued (position in metres, head direction in degrees, speed,
running-direction flags: CEBRA's demo trains on [position, right, left]); at most one
``discrete`` column holds integer classes (a context, a reach target, a trial condition). CEBRA
trains on continuous labels with `time_delta` positives, on a discrete label with positives of
the same class, and on both with positives of the same class nearest in the continuous labels.

Standard library only: the workflow's plan reads the default and the name rules from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

RAT_TRACK = ("position", "right", "left")  # CEBRA's demo: position on the track (m), two running-direction flags
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Columns the tables keep for themselves: a label may not take these names.
RESERVED = ("session", "time", "part", "kind", "seed", "split")
NEURAL_OR_EMBEDDING = re.compile(r"^[nz]\d+$")  # n0 … (session tables), z0 … (embedding tables)


@dataclass(frozen=True)
class LabelSpec:
    """The declared label columns: ``continuous`` (any number) and ``discrete`` (at most one)."""

    continuous: tuple[str, ...] = RAT_TRACK
    discrete: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "continuous", tuple(self.continuous))
        object.__setattr__(self, "discrete", tuple(self.discrete))
        if not self.continuous and not self.discrete:
            raise ValueError("labels: declare at least one column (labels.continuous or labels.discrete)")
        if len(self.discrete) > 1:
            raise ValueError(f"labels.discrete: at most one discrete column (as CEBRA), got {list(self.discrete)}")
        names = self.columns
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"labels: {twice} declared more than once")
        for name in names:
            if not re.match(NAME_PATTERN, name) or name in RESERVED or NEURAL_OR_EMBEDDING.match(name):
                raise ValueError(
                    f"labels: {name!r} cannot name a label column: use letters, digits and _ (not starting with a digit), and not "
                    f"{', '.join(RESERVED)}, n<k> or z<k>, which the tables use"
                )

    @classmethod
    def from_config(cls, labels: Mapping | None) -> "LabelSpec":
        """From the config's ``labels`` key ({continuous: [...], discrete: [...]}); None: the rat track."""
        if not labels:
            return cls()
        return cls(tuple(labels.get("continuous") or ()), tuple(labels.get("discrete") or ()))

    def to_config(self) -> dict:
        return {"continuous": list(self.continuous), "discrete": list(self.discrete)}

    @property
    def columns(self) -> tuple[str, ...]:
        """Every label column: the continuous ones, then the discrete one."""
        return self.continuous + self.discrete

    @property
    def is_rat_track(self) -> bool:
        """The published rats' labels [position, right, left] (one-hot running-direction flags)."""
        return self.continuous == RAT_TRACK and not self.discrete

    def kind(self, column: str) -> str:
        """'continuous' or 'discrete'; a column not declared is a ValueError naming the labels key."""
        if column in self.continuous:
            return "continuous"
        if column in self.discrete:
            return "discrete"
        raise ValueError(f"{column!r} is not a declared label column ({', '.join(self.columns)}; the labels key)")

    def check_chosen(self, chosen: str | Sequence[str], key: str) -> tuple[str, ...]:
        """A label chosen for an analysis (``key`` names the config key): one column, or two
        continuous ones (a 2-D grid); returned as a tuple."""
        columns = (chosen,) if isinstance(chosen, str) else tuple(chosen)
        if not 1 <= len(columns) <= 2:
            raise ValueError(f"{key}: name one label column or two continuous ones, got {list(columns)}")
        for column in columns:
            try:
                kind = self.kind(column)
            except ValueError as error:
                raise ValueError(f"{key}: {error}") from None
            if len(columns) == 2 and kind != "continuous":
                raise ValueError(f"{key}: a 2-D grid needs two continuous columns; {column!r} is discrete")
        return columns
