"""The engine: CEBRA's models, sampling, loss and training loop, and the estimator in front of them.
It reads nothing from the analysis, figures or steps layers.

- `architectures`: CEBRA's encoders as data and their windows (torch-free); `model`: the encoder and
  its fast training forward;
- `sampling`: positives and negatives (`nearest`: the nearest-label search); `loss`: InfoNCE;
  `training`: the loop, checkpoints, resume;
- `estimator`: `CEBRA` (fit / transform / save / load / adapt / stream); `adaptation`: a new
  session's encoder; `streaming`: bin-by-bin embedding; `cebra_format`: CEBRA's model files.
"""
