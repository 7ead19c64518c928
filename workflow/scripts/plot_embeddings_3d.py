"""One rat's interactive 3-D embeddings (aligned single-session beside multi-session), as an offline HTML page."""

import logging

from common import start

start(snakemake)

import pandas as pd

from cebra_core.interactive import plot_embeddings_3d, write_html
from cebra_core.plots import embedding_panels

rat = snakemake.wildcards.session
single, multi = (embedding_panels(pd.read_parquet(p), snakemake.params.sessions) for p in snakemake.input)
figure = plot_embeddings_3d(rat, single, multi)
page = write_html(figure, snakemake.output[0], div_id=f"embeddings-3d-{rat}")
logging.info("wrote %s (%.1f MB)", page, page.stat().st_size / 1e6)
