"""The 2 x S embedding grid: aligned single-session fits on top, the multi-session fit below."""

from common import start

start(snakemake)

import pandas as pd

from cebra_core.plots import embedding_panels, plot_embedding_grid, save_figure

single, multi = (embedding_panels(pd.read_parquet(p), snakemake.params.sessions) for p in (snakemake.input.single, snakemake.input.multi))
save_figure(plot_embedding_grid(single, multi), snakemake.output.png)  # and the .pdf beside it
