"""Analysis of embeddings: alignment, consistency, decoding, held-out splits, statistics, sweeps. It
reads embedding tables (`tables`) and arrays, and imports no figures or steps; only `replay` drives
a model (the engine's): a new animal adapted on its first seconds and streamed bin by bin.

- `tables`: embedding tables (rows, labels, parts); `alignment`: orthogonal Procrustes;
- `metrics`: `consistency_score`; `binning`: label bins and class means; `decoding`: kNN decoders;
  `stats`: seeds and paired tests;
- `protocols`, `splits`, `trials`: held-out splits (contiguous blocks, CEBRA's trial split);
- `evaluation`: held-out decoding and new-session tables; `sweep`: choosing on validation parts;
- `replay`: a held-out session replayed as if live (`snakemake online`).
"""
