"""The held-out session's consistency by kind of embedding, with its decoding errors beside (every
seed and fold: the dots are the single scores, the bars their means)."""

from common import start

start(snakemake)

import pandas as pd

from cebra_core.plots import plot_new_session, save_figure

table = pd.read_parquet(snakemake.input[0])
kinds = list(dict.fromkeys(table["kind"]))
consistency = {kind: table.query("kind == @kind and measure == 'consistency'")["value"].to_numpy() for kind in kinds}
errors = {kind: float(table.query("kind == @kind and measure == 'median_error_cm'")["value"].mean()) for kind in kinds}
figure = plot_new_session(consistency, errors, held_out=snakemake.wildcards.session)
save_figure(figure, snakemake.output.png)  # and the .pdf beside it
