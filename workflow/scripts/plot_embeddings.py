"""The 2 x S embedding grid: aligned single-session fits on top, the multi-session fit below."""

from common import start

start(snakemake)

import pandas as pd

from cebra_core.data import embedding_columns, split_sessions
from cebra_core.plots import plot_embedding_grid, save_figure


def panels(path):
    table = pd.read_parquet(path)
    z = embedding_columns(table)[:3]
    return {
        name: (part[z].to_numpy(), part["position"].to_numpy(), (part["direction"] == "right").to_numpy())
        for name, part in split_sessions(table, snakemake.params.sessions).items()
    }


figure = plot_embedding_grid(panels(snakemake.input.single), panels(snakemake.input.multi))
save_figure(figure, snakemake.output.png)  # and the .pdf beside it
