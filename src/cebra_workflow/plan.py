"""What the workflow runs, in plain Python: the sessions, seeds and splits, the fits and the sessions
each trains on (the {fit} wildcard's grammar), the held-out session, the sweep's grid points and
their names, the inputs that later rules gather by name, and every target's files (from `paths`).

Snakemake's own process imports this module (``workflow/rules/common.smk``), and under
``--use-conda`` that process has no numpy or torch: standard library only. The config it takes has
been checked and completed by `cebra_workflow.config.assemble`, which the workflow and the tests
both call.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import re
from collections.abc import Callable, Iterable

from cebra_core.analysis.protocols import METRICS, TRIAL_SPLITS
from cebra_core.sessions.labels import LabelSpec
from cebra_core.sessions.rats import PUBLISHED, RAT_SHAPES
from cebra_workflow import paths
from cebra_workflow.paths import fill

KINDS = ["single", "multi"]
ONLINE = "online"  # the split of the causal leave-one-out fit that `snakemake online` adapts a new animal into


class ConfigError(ValueError):
    """A config that the schema accepts but the workflow cannot run; the message names the key."""


class Plan:
    """The workflow's plan for one validated config. ``validate`` checks a config against the schema
    (a sweep's grid points are checked with it); None skips that check."""

    def __init__(self, config: dict, validate: Callable[[dict], None] | None = None):
        self.config = config
        self._validate = validate
        self.sessions: list[str] = list(config["sessions"])
        self.seeds: list[str] = [str(seed) for seed in config["seeds"]]
        self.first_seed = self.seeds[0]
        self.source: str = config["data"]["source"]
        # Splits: "all" (whole sessions: the notebook's fits and figures) and one per held-out fold
        # (with evaluation.protocol trials, one per split number of CEBRA's trial split).
        self.protocol: str = config["evaluation"]["protocol"]
        folds = TRIAL_SPLITS if self.protocol == "trials" else config["evaluation"]["folds"]
        self.folds = [f"fold{k}" for k in range(folds)]
        self.splits = ["all", *self.folds]
        self._check_sessions()
        self.labels = self._check_labels()
        unnamed = [s for s in config["signals"] if s not in self.sessions]
        if unnamed:
            raise ConfigError(f"config: signals: {unnamed} are not among the sessions {self.sessions} "
                              "(the signals map gives a session's kind: counts or continuous)")
        if self.source == "local":  # an unset variable is named here, not as a WildcardError later
            for session in self.sessions:
                if session in config["data"].get("local", {}):
                    self.local_entry(session)
        self.held_out = self._held_out_session()
        self.trained = [s for s in self.sessions if s != self.held_out]  # the leave-one-out fit's sessions
        self.fits = [*self.kind_fits("single"), *self.kind_fits("multi"),
                     *(f"multi_without/{s}" for s in [self.held_out] if s)]
        self.sweep = config["sweep"]
        # the trial split has its own validation trials: the contiguous keys neither cut nor name its points
        self.sweep_split = {"protocol": self.protocol, "fold": 0} if self.protocol == "trials" else {
            "protocol": self.protocol, "fold": 0, "folds": config["evaluation"]["folds"],
            "test_fraction": config["evaluation"]["test_fraction"],
            "validation_fraction": self.sweep["validation_fraction"]}
        self.sweep_points, self.sweep_sessions, self.sweep_fits, self.sweep_seeds = self._sweep()

    # ---------------------------------------------------------------------------- sessions

    def _check_sessions(self) -> None:
        """Fail before any job runs when the sessions do not fit the data source."""
        if self.source == "simulate" and self.config["data"]["simulate"]["kind"] != "rat":
            return  # simulated mice and monkeys take any name
        known = {"published": PUBLISHED, "simulate": RAT_SHAPES, "local": self.config["data"]["local"]}[self.source]
        unknown = [s for s in self.sessions if s not in known]
        if unknown:
            hint = {
                "published": "the published rats are " + ", ".join(PUBLISHED),
                "simulate": "the simulator knows " + ", ".join(RAT_SHAPES),
                "local": "give each one a file under data: local: {session: path}",
            }[self.source]
            raise ConfigError(f"config: sessions {unknown} are not available with data: source: {self.source} ({hint})")

    def _check_labels(self) -> LabelSpec:
        """The declared labels, and every key that names a label column checked against them."""
        config = self.config
        try:
            spec = LabelSpec.from_config(config["labels"])
            self.consistency_label = spec.check_chosen(config["analysis"]["consistency_label"],
                                                       "analysis.consistency_label")
            spec.check_chosen(config["figures"]["colour_by"], "figures.colour_by")
            score = config["evaluation"]["score"]
            missing = [key for key in ("column", "metric") if key not in score]
            if missing:
                raise ValueError(f"evaluation.score: give {' and '.join(missing)} (e.g. column: position, metric: "
                                 "median_abs_error)")
            spec.check_chosen(score["column"], "evaluation.score")  # an undeclared column, named with its key
            kind = spec.kind(score["column"])
        except ValueError as error:
            raise ConfigError(f"config: {error}") from None
        if score["metric"] not in METRICS[kind]:
            raise ConfigError(f"config: evaluation.score: {score['column']!r} is a {kind} label column; its metrics are "
                              f"{', '.join(METRICS[kind])}, not {score['metric']!r}")
        if self.protocol == "trials" and not spec.is_rat_track:
            raise ConfigError("config: evaluation.protocol trials cuts trials at the rat track's running-direction flag "
                              f"(labels position, right, left), but the labels are {list(spec.columns)}; use "
                              "evaluation.protocol contiguous")
        if config["cebra"]["conditional"] == "delta" and config["cebra"]["delta"] is None:
            raise ConfigError("config: cebra.conditional delta needs cebra.delta, the noise on the label (its units)")
        return spec

    def _held_out_session(self) -> str | None:
        """The session left out of a multi-session fit and adapted into it (new_session.held_out), or None."""
        held = self.config["new_session"]["held_out"]
        if held is None or held is False:
            return None
        if held == "last":
            return self.sessions[-1]
        if held not in self.sessions:
            raise ConfigError(
                f"config: new_session: held_out: {held!r} is not one of the sessions {self.sessions} "
                "(name one of them, write last for the last one, or null for no new-session target)"
            )
        return held

    def local_entry(self, session: str) -> dict:
        """{path, md5, ...} of a local session; paths may use ~ and environment variables (an unset one is an error)."""
        entry = self.config["data"]["local"][session]
        entry = {"path": entry} if isinstance(entry, str) else dict(entry)
        path = os.path.expanduser(os.path.expandvars(entry["path"]))
        unset = re.search(r"\$\{?(\w+)\}?", path)
        if unset:
            raise ConfigError(
                f"config: data.local.{session}: the path {entry['path']!r} uses the environment variable "
                f"{unset[1]}, which is not set; set it (export {unset[1]}=/path/to/the/folder) or write the path in full"
            )
        entry["path"] = path
        return entry

    def session_file(self, session: str) -> str:
        """The raw file a session table is made from: the verified download or the user's file."""
        if self.source == "published":
            return fill(paths.RAW_SESSION, session=session)
        return self.local_entry(session)["path"]

    def session_md5(self, session: str) -> str | None:
        if self.source == "published":
            return self.config["data"]["download"]["checksums"].get(session, {}).get("jl_md5")
        return self.local_entry(session).get("md5")

    @staticmethod
    def session_table(session: str) -> str:
        return fill(paths.SESSION_TABLE, session=session)

    def session_nwb(self, session: str) -> dict | None:
        """Reading options of a local session's .nwb file (data: nwb: plus its own keys), else None."""
        if self.source != "local":
            return None
        entry = self.local_entry(session)
        options = {k: v for k, v in entry.items() if k not in ("path", "md5") and v is not None}
        if not entry["path"].lower().endswith(".nwb") and not options:
            return None
        defaults = {k: v for k, v in self.config["data"]["nwb"].items() if v is not None}
        return {**defaults, **options}

    def session_sources(self) -> dict[str, str]:
        """Where each session came from, as the checks' messages name it."""
        if self.source == "simulate":
            scale = self.config["data"]["simulate"]["scale"]
            return {s: f"simulated, data.simulate.scale={scale}" for s in self.sessions}
        return {s: self.session_file(s) for s in self.sessions}

    def session_needs(self) -> dict:
        """What the fits and analyses need of every session (cebra_core.steps.checks.SessionNeeds)."""
        config = self.config
        evaluation = config["evaluation"]
        # the largest part of a session any contiguous held-out fold tests on (its decoder trains on
        # the rest); the trial split's parts depend on the labels, and the check cuts them itself
        largest_test = evaluation["test_fraction"] if evaluation["folds"] == 1 else 1 / evaluation["folds"]
        return {
            "batch_size": config["cebra"]["batch_size"],
            "time_offsets": config["cebra"]["time_offsets"],
            "consistency_bins": config["analysis"]["consistency_bins"],
            "decoding_neighbors": config["analysis"]["decoding_neighbors"],
            "alignment_top_k": config["analysis"]["alignment_top_k"],
            "train_fraction": 1 - largest_test,
            "protocol": self.protocol,
            "model_architecture": config["cebra"]["model_architecture"],
            "labels": self.labels.to_config(),
            "consistency_label": list(self.consistency_label),
        }

    # -------------------------------------------------------------------------------- fits
    # Fits: "single/<session>", "multi" (all sessions), "multi_without/<held-out session>", and for a
    # sweep over some of the sessions "multi/<session>+<session>...".

    def fit_sessions(self, fit: str) -> list[str]:
        """The sessions a fit trains on, in order (a multi-session model's session ids follow it)."""
        if fit == "multi":
            return self.sessions
        kind, rest = fit.split("/", 1)
        return {"single": [rest], "multi": rest.split("+"), "multi_without": self.trained}[kind]

    def kind_fits(self, kind: str, sessions: Iterable[str] | None = None) -> list[str]:
        """The fits of one kind over some sessions: one per session (single) or one for all (multi)."""
        sessions = self.sessions if sessions is None else list(sessions)
        if kind == "single":
            return [f"single/{s}" for s in sessions]
        return ["multi" if sessions == self.sessions else "multi/" + "+".join(sessions)]

    def fit_priority(self, fit: str) -> int:
        """Longest first: the more sessions a fit trains on, the longer it runs, so it starts first; on
        a few cores no multi-session fit is then left running alone while the other cores idle."""
        return len(self.fit_sessions(fit))

    def fit_kind(self, fit: str) -> str:
        """single (one session, `fit` is single/<session>) or multi (every other fit)."""
        return "single" if fit.startswith("single/") else "multi"

    @staticmethod
    def fit_file(path: str, split: str = "{split}", seed: str = "{seed}", fit: str = "{fit}") -> str:
        """A fit's file (paths.FIT_MODEL, FIT_LOSS, FIT_EMBEDDING, FIT_BENCHMARK) for a split, seed and fit."""
        return fill(path, split=split, seed=seed, fit=fit)

    def split_params(self, split: str) -> dict:
        """cebra_core.analysis.splits.make_split's arguments for a split name: protocol, fold index (None: whole
        sessions), folds, test_fraction; a sweep's split also validation_fraction."""
        if split.startswith("sweep/"):
            return self.sweep_split
        evaluation = self.config["evaluation"]
        fold = None if split in ("all", ONLINE) else self.folds.index(split)
        return {"protocol": self.protocol, "fold": fold, "folds": evaluation["folds"],
                "test_fraction": evaluation["test_fraction"]}

    def decoding_k_grid(self) -> list[int] | None:
        """The k the decoder chooses from on validation parts (protocol trials), else None (a fixed k)."""
        return self.config["evaluation"]["decoding_k_grid"] if self.protocol == "trials" else None

    def fit_cebra(self, split: str) -> dict:
        """A fit's cebra parameters: the config's, its sweep point's, or for the online split the
        config's made causal (the window ends at the bin it embeds)."""
        if split.startswith("sweep/"):
            return self.sweep_points[split.removeprefix("sweep/")]["cebra"]
        if split == ONLINE:
            return {**self.config["cebra"], "causal": True}
        return self.config["cebra"]

    def kind_embeddings(self, kind: str, seed: str) -> list[str]:
        """The whole-session embedding table(s) of one kind of fit and one seed, in session order."""
        return [self.fit_file(paths.FIT_EMBEDDING, "all", seed, fit) for fit in self.kind_fits(kind)]

    def whole_session_embeddings(self, kind: str) -> list[str]:
        """The whole-session embedding tables of one kind of fit, one per fit and seed, every seed."""
        return [path for seed in self.seeds for path in self.kind_embeddings(kind, seed)]

    def heldout_groups(self, kinds: Iterable[str] = KINDS) -> list[dict]:
        """Every seed x fold x kind of the held-out fits: [{input (the name of its input entry in
        `heldout_inputs`), seed, fold, kind}]."""
        return [{"input": f"{kind}_seed{seed}_{fold}", "seed": int(seed), "fold": fold, "kind": kind}
                for seed in self.seeds for fold in self.folds for kind in kinds]

    def heldout_inputs(self, kinds: Iterable[str] = KINDS) -> dict[str, list[str]]:
        """{input name: the embedding tables of one seed x fold x kind} of `heldout_groups`."""
        return {group["input"]: [self.fit_file(paths.FIT_EMBEDDING, group["fold"], str(group["seed"]), fit)
                                 for fit in self.kind_fits(group["kind"])]
                for group in self.heldout_groups(kinds)}

    def new_session_runs(self) -> list[dict]:
        """Every seed x fold of the new session's scores: [{seed, fold, inputs: {role: input name}}],
        and the input entries they name (`new_session_inputs`)."""
        return [{"seed": int(seed), "fold": fold,
                 "inputs": {role: f"{role}_seed{seed}_{fold}" for role in ("adapted", "untrained", "single", "multi")}}
                for seed in self.seeds for fold in self.folds]

    def new_session_inputs(self, session: str) -> dict[str, str | list[str]]:
        """{input name: path(s)} of `new_session_runs`: the adapted and untrained embeddings, the
        single-session fits of every session and the multi-session fit, per seed and fold."""
        inputs: dict[str, str | list[str]] = {}
        for run in self.new_session_runs():
            seed, fold, names = str(run["seed"]), run["fold"], run["inputs"]
            inputs[names["adapted"]] = fill(paths.ADAPTED_EMBEDDING, fold=fold, seed=seed, session=session)
            inputs[names["untrained"]] = fill(paths.UNTRAINED_EMBEDDING, fold=fold, seed=seed, session=session)
            inputs[names["single"]] = [self.fit_file(paths.FIT_EMBEDDING, fold, seed, f) for f in self.kind_fits("single")]
            inputs[names["multi"]] = self.fit_file(paths.FIT_EMBEDDING, fold, seed, "multi")
        return inputs

    def wildcard_constraints(self) -> dict[str, str]:
        """A regular expression per wildcard: exactly the names this config uses."""
        def one_of(names):
            return "|".join(re.escape(n) for n in dict.fromkeys(names))

        return {
            "session": one_of(self.sessions),
            "kind": one_of(KINDS),
            "seed": one_of(self.seeds + self.sweep_seeds),
            "split": one_of(self.splits + [ONLINE] + [f"sweep/{p}" for p in self.sweep_points]),
            "fold": one_of(self.folds),
            "fit": one_of(self.fits + self.sweep_fits),
        }

    # ----------------------------------------------------------------------------- targets

    def figure_targets(self) -> list[str]:
        """The notebook's job: whole-session fits, alignment, consistency, the two figures."""
        return [paths.figure("embeddings"), paths.figure("consistency"), paths.CONSISTENCY_CSV]

    def evaluation_targets(self) -> list[str]:
        """Held-out fits, decoding on the test parts, statistics over seeds and rat pairs."""
        return [paths.DECODING_CSV, paths.STATISTICS_CSV, paths.figure("summary")]

    def new_session_targets(self) -> list[str]:
        """The leave-one-out fit, the held-out session adapted into it, its scores (none without held_out)."""
        if self.held_out is None:
            return []
        return [fill(paths.NEW_SESSION_CSV, session=self.held_out), paths.figure(f"new_session_{self.held_out}")]

    def online_targets(self) -> list[str]:
        """`snakemake online`: the held-out session adapted from its first seconds and streamed (none
        without new_session.held_out)."""
        if self.held_out is None:
            raise ConfigError("snakemake online replays the held-out session: set new_session.held_out")
        return [fill(paths.ONLINE_CSV, session=self.held_out), paths.figure(f"online_{self.held_out}")]

    def online_iterations(self) -> int | None:
        """The online adaptations' iterations: online.iterations, else new_session.iterations (None:
        the fit's own)."""
        return self.config["online"]["iterations"] or self.config["new_session"]["iterations"]

    def final_targets(self) -> list[str]:
        """`snakemake` / `all`: everything but the sweep."""
        return [
            paths.CHECKS,
            *self.figure_targets(),
            paths.figure("loss"),
            *self.evaluation_targets(),
            *(fill(paths.EMBEDDINGS_3D, session=s) for s in self.sessions),
            *self.new_session_targets(),
        ]

    # ------------------------------------------------------------------------------- sweeps
    # A grid point is the config's cebra parameters with one value per grid key merged in; its fits
    # are the {split} "sweep/<point>", where <point> hashes the point's full parameters and the nested
    # split. Grid entries, or two sweeps, that give the same parameters share one file and one job.
    # The config's own cebra parameters (the reference) are always fitted too, so the chosen point is
    # compared with them on the test part.

    def point_id(self, cebra: dict) -> str:
        """A short, stable name for a fit's parameters and the sweep's split (a folder name)."""
        text = json.dumps({"cebra": cebra, "split": self.sweep_split}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    def _sweep_point_parameters(self, grid: dict) -> list[tuple[dict, dict]]:
        """(changes, full cebra parameters) of every grid point, each checked against the schema."""
        base = self.config["cebra"]
        points = []
        for values in itertools.product(*grid.values()):
            # 1 and 1.0 are one temperature: cast to the default's type so they hash alike
            changes = {k: float(v) if isinstance(base.get(k), float) and isinstance(v, int) and not isinstance(v, bool)
                       else v for k, v in zip(grid, values)}
            if self._validate is not None:
                try:
                    self._validate({**copy.deepcopy(self.config), "cebra": {**base, **changes}})
                except Exception as error:
                    raise ConfigError(f"config: sweep: grid: the point {changes} is not a valid cebra configuration: {error}")
            points.append((changes, {**base, **changes}))
        return points

    def _sweep(self) -> tuple[dict, list[str], list[str], list[str]]:
        """{point id: {parameters (the grid's keys), cebra (all), candidate, reference}}, grid order,
        the reference (the config's cebra) last when the grid does not hold it; the sessions, fits, seeds."""
        sweep = self.sweep
        sessions = sweep["sessions"] or self.sessions
        unknown = [s for s in sessions if s not in self.sessions]
        if unknown:
            raise ConfigError(f"config: sweep: sessions {unknown} are not among the config's sessions {self.sessions}")
        if sweep["kind"] == "multi" and len(sessions) < 2:
            raise ConfigError("config: sweep: kind multi needs at least 2 sessions (or use kind: single)")
        if "validation_consistency" in sweep["select_by"] and len(sessions) < 2:
            raise ConfigError("config: sweep: select_by validation_consistency compares sessions: give at least 2")
        points: dict[str, dict] = {}
        if sweep["grid"]:
            for changes, cebra in [*self._sweep_point_parameters(sweep["grid"]), (None, self.config["cebra"])]:
                cebra = dict(sorted(cebra.items()))  # one key order whatever the config files' order
                entry = points.setdefault(self.point_id(cebra), {"parameters": changes, "cebra": cebra,
                                                                 "candidate": False, "reference": False})
                entry["candidate"] |= changes is not None
                entry["reference"] |= changes is None
            for entry in points.values():  # the reference's values of the grid keys, for the table
                entry["parameters"] = {k: entry["cebra"][k] for k in sweep["grid"]}
        seeds = [str(s) for s in (sweep["seeds"] or self.config["seeds"])]
        return points, list(sessions), self.kind_fits(sweep["kind"], sessions), seeds

    def sweep_runs(self) -> list[dict]:
        """Every grid point x seed of the sweep: {point, seed, parameters, candidate, reference, and
        the names of its input entries (`sweep_inputs`): embeddings, losses, benchmarks}; an error
        when the config has no sweep."""
        if not self.sweep_points:
            raise ConfigError("snakemake sweep: the config has no sweep: grid (see config/sweep.example.yaml)")
        return [{"point": point, "seed": int(seed), "parameters": entry["parameters"], "candidate": entry["candidate"],
                 "reference": entry["reference"],
                 "inputs": {role: f"{role}_{point}_seed{seed}" for role in ("embeddings", "losses", "benchmarks")}}
                for point, entry in self.sweep_points.items() for seed in self.sweep_seeds]

    def sweep_inputs(self) -> dict[str, list[str]]:
        """{input name: the files of one point x seed's fits} of `sweep_runs`."""
        inputs = {}
        for run in self.sweep_runs():
            split, seed, names = f"sweep/{run['point']}", str(run["seed"]), run["inputs"]
            for role, path in (("embeddings", paths.FIT_EMBEDDING), ("losses", paths.FIT_LOSS),
                               ("benchmarks", paths.FIT_BENCHMARK)):
                inputs[names[role]] = [self.fit_file(path, split, seed, fit) for fit in self.sweep_fits]
        return inputs

    def sweep_targets(self) -> list[str]:
        """The sweep's outputs (snakemake sweep); an error when the config has no sweep."""
        self.sweep_runs()
        return [paths.SWEEP_CSV, paths.figure("sweep"), paths.SWEEP_CHOSEN]
