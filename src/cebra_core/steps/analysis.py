"""The analysis steps (the analysis environment: numpy, scipy, pandas, pyarrow, pyyaml; no torch):
alignment, consistency, held-out decoding, statistics over seeds, a new session's scores and a
sweep's table. Each reads embedding tables, calls `cebra_core.analysis` and writes its tables."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cebra_core.analysis.alignment import align_to_reference
from cebra_core.analysis.evaluation import decoding_table, new_session_table, runs_consistency
from cebra_core.analysis.metrics import label_consistency
from cebra_core.analysis.protocols import DEFAULT_SCORE
from cebra_core.analysis.stats import summary_table
from cebra_core.analysis.sweep import SweepRun, chosen_config, sweep_table
from cebra_core.analysis.tables import alignment_labels, embedding_columns, is_discrete, label_values, split_sessions
from cebra_core.sessions.files import atomic_output, write_table

log = logging.getLogger(__name__)

Path = str | os.PathLike


def read_tables(paths: Path | Sequence[Path], sessions: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The embedding tables at ``paths`` (one, or several read as one), split by session in ``sessions``' order."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    return split_sessions(pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True), sessions)


def align(tables: Sequence[Path], output: Path, *, sessions: Sequence[str], top_k: int, seed: int, kind: str) -> None:
    """Rotate every session's embedding onto the first session's (Procrustes on label neighbours);
    the aligned table says which ``kind`` of fit and ``seed`` it holds."""
    parts = read_tables(tables, sessions)
    z = embedding_columns(next(iter(parts.values())))
    aligned = align_to_reference({name: part[z].to_numpy() for name, part in parts.items()},
                                 {name: alignment_labels(part) for name, part in parts.items()},
                                 reference=sessions[0], top_k=top_k)
    for name, part in parts.items():
        part[z] = aligned[name]
    table = pd.concat(parts.values(), ignore_index=True)
    table.insert(0, "kind", kind)
    table.insert(1, "seed", int(seed))
    write_table(table, output)
    log.info("aligned %s onto %s (%s, seed %s)", list(sessions[1:]), sessions[0], kind, seed)


def _label(label: str | Sequence[str]) -> list[str]:
    """The configured consistency label as a list of columns (one, or two continuous ones)."""
    return [label] if isinstance(label, str) else list(label)


def consistency_arrays(frames: Sequence[pd.DataFrame], label: Sequence[str]) -> tuple[list[np.ndarray], str]:
    """The consistency label of each table ((T,) or (T, 2)) and its kind (continuous or discrete)."""
    kind = "discrete" if len(label) == 1 and is_discrete(frames[0][label[0]]) else "continuous"
    return [label_values(f, label[0] if len(label) == 1 else list(label)) for f in frames], kind


def consistency(aligned: Sequence[Path], *, table: Path, csv: Path, sessions: Sequence[str], bins: int,
                label: str | Sequence[str] = "position") -> None:
    """Consistency (R² of linear maps between label-binned embeddings) on ``label`` of every aligned
    table (a kind of fit and a seed each): rows kind, seed, split, label, source, target, score."""
    label = _label(label)
    frames = [pd.read_parquet(path) for path in aligned]
    frames.sort(key=lambda frame: (frame["kind"].iloc[0] != "single", int(frame["seed"].iloc[0])))  # single first
    rows = []
    for frame in frames:
        kind, seed = str(frame["kind"].iloc[0]), int(frame["seed"].iloc[0])
        parts = list(split_sessions(frame, sessions).values())
        z = embedding_columns(frame)
        values, label_kind = consistency_arrays(parts, label)
        scores, pairs, _ = label_consistency([p[z].to_numpy() for p in parts], values, list(sessions), label_kind,
                                             bins, columns=label)
        rows += [(kind, seed, "all", "+".join(label), str(a), str(b), float(s)) for (a, b), s in zip(pairs, scores)]
        log.info("%s, seed %s: mean consistency on %s %.3f", kind, seed, "+".join(label), float(scores.mean()))
    result = pd.DataFrame(rows, columns=["kind", "seed", "split", "label", "source", "target", "score"])
    write_table(result, table, csv)


def decoding(inputs: Mapping[str, Sequence[Path]], *, table: Path, csv: Path, groups: Sequence[Mapping],
             sessions: Sequence[str], neighbors: int, top_k: int, min_coverage: float,
             k_grid: Sequence[int] | None, label: str | Sequence[str] = "position") -> None:
    """Held-out kNN decoding of every label column within and across sessions for every group (a
    seed, fold and kind of fit, whose embedding tables are ``inputs[group["input"]]``): encoders and
    decoders fitted on train parts, scored on test parts, each score beside its chance level
    (`cebra_core.analysis.evaluation.decoding_table`); a test part covering less than
    ``min_coverage`` of ``label`` is flagged."""
    tables = []
    for group in groups:
        scores = decoding_table(read_tables(inputs[group["input"]], sessions), shared_space=group["kind"] == "multi",
                                n_neighbors=neighbors, top_k=top_k, min_coverage=min_coverage, k_grid=k_grid,
                                coverage_label=_label(label))
        fit = "single/<train rat>" if group["kind"] == "single" else "multi"
        scores.insert(0, "kind", group["kind"])
        scores.insert(1, "seed", group["seed"])
        scores.insert(2, "split", group["fold"])
        scores.insert(3, "encoder", f"{fit} on the train parts")
        tables.append(scores)
        within = scores[scores["train"] == scores["test"]]
        summary = within.groupby(["column", "metric"], sort=False)[["value", "chance"]].mean()
        log.info("%s seed %s %s, within-session decoding (mean over sessions; flagged test parts: %s):\n%s",
                 group["kind"], group["seed"], group["fold"], sorted(set(within.loc[within["flagged"], "test"])),
                 summary.to_string(float_format="%.4g"))
    write_table(pd.concat(tables, ignore_index=True), table, csv)


def statistics(*, consistency: Path, decoding: Path, single: Sequence[Path], multi: Sequence[Path],
               table: Path, csv: Path, sessions: Sequence[str]) -> None:
    """Mean ± sd over seeds, the paired test of multi- against single-session consistency, and the
    consistency between seeds (``single``/``multi``: every whole-session embedding table of that kind)."""
    runs = runs_consistency({"single": [pd.read_parquet(p) for p in single],
                             "multi": [pd.read_parquet(p) for p in multi]}, sessions)
    result = summary_table(pd.read_parquet(consistency), pd.read_parquet(decoding), runs)
    write_table(result, table, csv)
    for row in result[result["measure"].isin(["consistency", "consistency_paired_test"])].itertuples():
        log.info("%s %s: %.3f ± %.3f (n=%d) t=%.3f p=%.4g", row.measure, row.kind, row.mean, row.sd, row.n,
                 row.statistic, row.p_value)


def new_session_scores(inputs: Mapping[str, Path | Sequence[Path]], *, table: Path, csv: Path, held_out: str,
                       runs: Sequence[Mapping], sessions: Sequence[str], bins: int, neighbors: int,
                       min_coverage: float, label: str | Sequence[str] = "position") -> None:
    """The held-out session's scores on its test part for every seed and fold (``runs``, each naming
    its input entries: adapted, untrained, single, multi): adapted encoder, untrained encoder
    (random), its single-session and its full multi-session held-out fits."""
    tables = []
    for run in runs:
        names = run["inputs"]
        adapted = read_tables(inputs[names["adapted"]], sessions)
        kinds = {
            "random": {**adapted, held_out: pd.read_parquet(inputs[names["untrained"]])},
            "single": read_tables(inputs[names["single"]], sessions),
            "multi": read_tables(inputs[names["multi"]], sessions),
            "adapted": adapted,
        }
        scores = new_session_table(kinds, held_out, bins=bins, n_neighbors=neighbors, min_coverage=min_coverage,
                                   label=_label(label))
        scores.insert(0, "seed", run["seed"])
        scores.insert(1, "split", run["fold"])
        tables.append(scores)
        means = scores[scores["measure"] == "consistency_mean"].set_index("kind")["value"]
        log.info("seed %s %s: consistency %s", run["seed"], run["fold"], means.round(3).to_dict())
    write_table(pd.concat(tables, ignore_index=True), table, csv)


def sweep(inputs: Mapping[str, Sequence[Path]], *, table: Path, csv: Path, chosen: Path, runs: Sequence[Mapping],
          sessions: Sequence[str], select_by: Sequence[str], neighbors: int, bins: int,
          decode: Mapping[str, str] | None = None, label: str | Sequence[str] = "position") -> None:
    """A sweep's table: every grid point x seed (``runs``, each naming its input entries: embeddings,
    losses, benchmarks) scored on the validation parts, the point chosen on them, the chosen point
    and the reference scored on the test parts (`cebra_core.analysis.sweep`); and the chosen
    parameters as a config file that --configfile accepts."""
    import yaml  # the analysis environment has it; only the sweep writes YAML

    sweep_runs = []
    for run in runs:
        names = run["inputs"]
        final_loss = np.mean([pd.read_parquet(p)["total"].iloc[-1] for p in inputs[names["losses"]]])
        seconds = sum(pd.read_csv(p, sep="\t")["s"].iloc[0] for p in inputs[names["benchmarks"]])
        sweep_runs.append(SweepRun(run["point"], run["seed"], run["parameters"],
                                   read_tables(inputs[names["embeddings"]], sessions), float(final_loss),
                                   float(seconds), run["candidate"], run["reference"]))
    decode = dict(decode or DEFAULT_SCORE)
    result = sweep_table(sweep_runs, select_by=select_by, n_neighbors=neighbors, bins=bins,
                         decode=(decode["column"], decode["metric"]), label=_label(label))
    write_table(result, table, csv)
    keys = list(runs[0]["parameters"])
    means = result.groupby("point", sort=False)[["validation_decoding", "validation_consistency", "test_decoding"]].mean()
    point = result.loc[result["chosen"], "point"].iloc[0]
    reference = result.loc[result["reference"], "point"].iloc[0]
    scored = f"{decode['metric']} of {decode['column']}"
    log.info("chosen point %s %s by %s: validation %s %.4g, test %.4g (reference %s: test %.4g)",
             point, chosen_config(result, keys)["cebra"], select_by, scored, means.loc[point, "validation_decoding"],
             means.loc[point, "test_decoding"], reference, means.loc[reference, "test_decoding"])
    header = (
        f"# The parameters `snakemake sweep` chose (grid point {point}) by {', '.join(select_by)}\n"
        f"# on the validation parts, mean over seeds {sorted(set(result['seed']))}: validation {scored} "
        f"{means.loc[point, 'validation_decoding']:.4g}; test {means.loc[point, 'test_decoding']:.4g}\n"
        f"# (not used to choose). Merge it over the config the sweep ran with:\n"
        f"#   snakemake --configfile <that config> {chosen}\n"
    )
    with atomic_output(chosen) as tmp:
        tmp.write_text(header + yaml.safe_dump(chosen_config(result, keys), sort_keys=False))
