"""Training loss curves of the first seed's whole-session fits (single-session per rat, and multi-session)."""

from common import start

start(snakemake)

import pandas as pd

from cebra_core.plots import plot_loss_curves, save_figure

batch, sessions = snakemake.params.batch_size, len(snakemake.params.sessions)
histories = {}
for path in [*snakemake.input.single, snakemake.input.multi]:
    table = pd.read_parquet(path).sort_values("iteration")
    name = table["fit"].iloc[0]
    label = f"multi ({sessions} × {batch} per batch)" if name == "multi" else f"{name.replace('/', '-')} ({batch} per batch)"
    histories[label] = table["total"].to_numpy()
smooth = max(1, min(100, min(len(h) for h in histories.values()) // 10))
note = (
    f"The multi-session loss sits higher: each of its batches contrasts against the negatives of all "
    f"{sessions} rats ({sessions} × {batch}), and InfoNCE grows with the number of negatives (about ln {sessions} "
    "above a single-session fit at the same fit quality)."
)
figure = plot_loss_curves(histories, smooth=smooth, note=note)
save_figure(figure, snakemake.output.png)  # and the .pdf beside it
