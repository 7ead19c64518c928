"""One rat's interactive 3-D embeddings (aligned single-session beside multi-session), as an offline HTML page."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

import pandas as pd

from cebra_core.data import embedding_columns, split_sessions
from cebra_core.interactive import plot_embeddings_3d, write_html


def panels(path):
    table = pd.read_parquet(path)
    z = embedding_columns(table)[:3]
    return {
        name: (part[z].to_numpy(), part["position"].to_numpy(), (part["direction"] == "right").to_numpy())
        for name, part in split_sessions(table, snakemake.params.sessions).items()
    }


rat = snakemake.wildcards.session
figure = plot_embeddings_3d(rat, panels(snakemake.input.single), panels(snakemake.input.multi))
page = write_html(figure, snakemake.output[0], div_id=f"embeddings-3d-{rat}")
logging.info("wrote %s (%.1f MB)", page, page.stat().st_size / 1e6)
