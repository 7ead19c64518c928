"""Training loss curves of the first seed's whole-session fits (single-session per rat, and multi-session)."""

from common import start

start(snakemake)

import pandas as pd

from cebra_core.plots import plot_loss_curves, save_figure

histories = {}
for path in [*snakemake.input.single, snakemake.input.multi]:
    table = pd.read_parquet(path).sort_values("iteration")
    histories[table["fit"].iloc[0].replace("/", "-")] = table["total"].to_numpy()
smooth = max(1, min(100, min(len(h) for h in histories.values()) // 10))
save_figure(plot_loss_curves(histories, smooth=smooth), snakemake.output.png)  # and the .pdf beside it
