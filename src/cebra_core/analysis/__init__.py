"""Analysis of embeddings: alignment, consistency, decoding, held-out splits, statistics, sweeps. It
never trains: it reads embedding tables (`tables`) and arrays, and imports no engine, figures or steps.

- `tables`: embedding tables (rows, labels, parts); `alignment`: orthogonal Procrustes;
- `metrics`: `consistency_score`; `decoding`: kNN decoders; `stats`: seeds and paired tests;
- `protocols`, `splits`, `trials`: held-out splits (contiguous blocks, CEBRA's trial split);
- `evaluation`: held-out decoding and new-session tables; `sweep`: choosing on validation parts.
"""
