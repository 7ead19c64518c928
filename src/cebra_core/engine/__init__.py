"""The engine: CEBRA's models, sampling, loss and training loop, and the estimator in front of them.
It reads nothing from the analysis, figures or steps layers.

- `offsets`: the model's window (torch-free); `model`: the encoder and its fast training forward;
- `sampling`: positives and negatives; `loss`: InfoNCE; `training`: the loop, checkpoints, resume;
- `estimator`: `CEBRA` (fit / transform / save / load / adapt); `adaptation`: a new session's encoder.
"""
