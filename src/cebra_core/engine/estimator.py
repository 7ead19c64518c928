"""`CEBRA`: the scikit-learn-style front door, a drop-in for `cebra.CEBRA` in the hippocampus demo.

`fit(X, y)` trains one session, `fit([X1, X2, ...], [y1, y2, ...])` one encoder per session
with positives and negatives shared across sessions; `transform` embeds one row per input row.
Unlike cebra 0.6.1 it takes a `seed` (same data + parameters + seed = bit-identical result on
CPU) and can checkpoint and resume an interrupted fit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from cebra_core.engine.adaptation import (
    ADAPT_INITS,
    DEFAULT_INIT,
    DEFAULT_LAYERS,
    adaptation_step,
    first_layer_preactivations,
    new_session_encoder,
    regression_init,
    window_embedding_table,
)
from cebra_core.engine.loss import SUPPORTED_DISTANCES
from cebra_core.engine.model import (
    OFFSET_LEFT,
    OFFSET_RIGHT,
    RECEPTIVE_FIELD,
    SUPPORTED_ARCHITECTURES,
    Offset10Model,
    build_models,
    embed_sequence,
)
from cebra_core.engine.sampling import AdaptationSampler, make_sampler, sampling_device
from cebra_core.engine.training import LOG_COLUMNS, Checkpoint, atomic_torch_save, train
from cebra_core.sessions.validation import InputError

SUPPORTED_CONDITIONALS = ("time_delta",)
SAVE_FORMAT = "cebra_core.CEBRA/1"


DEVICES = "cuda_if_available, cpu, cuda, cuda:N or mps"  # the config schema's `device` pattern says the same
PORTABLE_DEVICE = "cuda_if_available"


class DeviceError(InputError):
    """A device torch does not see (or that is not a device): the message names the `device` key."""


def resolve_device(device: str) -> str:
    """The torch device to train on: 'cuda_if_available' -> 'cuda' when torch sees a GPU, else 'cpu'.

    A device torch does not see ('cuda' without a CUDA device, 'cuda:N' past the last one, 'mps'
    without Apple's GPU) is a `DeviceError` that names the `device` key, what torch sees and the
    portable choice, so that it fails before any data are read or any fit starts.
    """
    if device == PORTABLE_DEVICE:
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = str(device).partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not (kind == "cuda" and index.isdigit())):
        raise DeviceError(f"device={device!r} is not a device; use one of {DEVICES}")
    advice = (
        f"use device={PORTABLE_DEVICE!r} to train on a CUDA GPU where torch sees one and on the CPU elsewhere"
    )
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device={device!r}: torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is "
            f"False): a CPU-only build of torch, or no driver; {advice}"
        )
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise DeviceError(
            f"device={device!r}: torch {torch.__version__} sees {count} CUDA devices (cuda:0 to cuda:{count - 1}); "
            f"{advice}"
        )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(
            f"device={device!r}: torch {torch.__version__} sees no Apple GPU (torch.backends.mps.is_available() "
            f"is False): not a Mac with Apple silicon, or a torch built without MPS; {advice}"
        )
    return device


def _check_neural(X, where: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{where}: neural data must be 2-D (time, neurons), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) and X.dtype != bool:
        raise ValueError(f"{where}: neural data must be numeric, got dtype {X.dtype}")
    X = X.astype(np.float32)
    if X.shape[0] < RECEPTIVE_FIELD:
        raise ValueError(
            f"{where}: {X.shape[0]} samples is shorter than the model's receptive field ({RECEPTIVE_FIELD})"
        )
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise ValueError(f"{where}: neural data contains NaN or inf (first at row {int(np.argmax(bad))})")
    return X


def _check_labels(y, num_samples: int, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"{where}: labels must be 1-D or 2-D (time, label columns), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.number) and y.dtype != bool:
        raise ValueError(f"{where}: labels must be numeric, got dtype {y.dtype}")
    if y.shape[0] != num_samples:
        raise ValueError(f"{where}: neural data has {num_samples} rows but labels have {y.shape[0]}")
    y = y.astype(np.float32)
    bad = ~np.isfinite(y).all(axis=1)
    if bad.any():
        raise ValueError(f"{where}: labels contain NaN or inf (first at row {int(np.argmax(bad))})")
    return y


def _check_positive_int(value, name: str) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _fingerprint(params: dict, arrays: Sequence[np.ndarray]) -> str:
    """Hash of the parameters and the exact data, so a checkpoint is only resumed by the same fit."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


class CEBRA:
    """CEBRA-Behavior with the offset10-model, cosine InfoNCE and time_delta positives."""

    def __init__(
        self,
        model_architecture: str = "offset10-model",
        batch_size: int = 512,
        learning_rate: float = 3e-4,
        temperature: float = 1.0,
        output_dimension: int = 3,
        max_iterations: int = 10000,
        distance: str = "cosine",
        conditional: str = "time_delta",
        device: str = "cuda_if_available",
        verbose: bool = False,
        time_offsets: int = 10,
        num_hidden_units: int = 32,
        seed: int | None = None,
        checkpoint_path: str | Path | None = None,
        checkpoint_every: int = 500,
    ):
        self.model_architecture = model_architecture
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.temperature = temperature
        self.output_dimension = output_dimension
        self.max_iterations = max_iterations
        self.distance = distance
        self.conditional = conditional
        self.device = device
        self.verbose = verbose
        self.time_offsets = time_offsets
        self.num_hidden_units = num_hidden_units
        self.seed = seed
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every

    # ------------------------------------------------------------------ parameters
    _PARAM_NAMES = (
        "model_architecture", "batch_size", "learning_rate", "temperature", "output_dimension",
        "max_iterations", "distance", "conditional", "device", "verbose", "time_offsets",
        "num_hidden_units", "seed", "checkpoint_path", "checkpoint_every",
    )  # fmt: skip

    def get_params(self) -> dict:
        params = {name: getattr(self, name) for name in self._PARAM_NAMES}
        if params["checkpoint_path"] is not None:
            params["checkpoint_path"] = str(params["checkpoint_path"])
        return params

    def _check_params(self) -> None:
        choices = {
            "model_architecture": SUPPORTED_ARCHITECTURES,
            "distance": SUPPORTED_DISTANCES,
            "conditional": SUPPORTED_CONDITIONALS,
        }
        for name, supported in choices.items():
            if getattr(self, name) not in supported:
                raise ValueError(f"{name}={getattr(self, name)!r} is not supported; supported: {', '.join(supported)}")
        for name in ("batch_size", "max_iterations", "output_dimension", "num_hidden_units", "time_offsets",
                     "checkpoint_every"):  # fmt: skip
            _check_positive_int(getattr(self, name), name)
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature!r}")

    # ------------------------------------------------------------------ fit
    def fit(self, X, y) -> "CEBRA":
        """Train on one session (arrays) or several (lists of arrays, one encoder each)."""
        self._check_params()
        device = resolve_device(self.device)  # before the data: a missing GPU is the first thing said
        multi = isinstance(X, (list, tuple))
        if multi != isinstance(y, (list, tuple)):
            raise ValueError("give X and y both as arrays (one session) or both as lists (multi-session)")
        sessions_X = list(X) if multi else [X]
        sessions_y = list(y) if multi else [y]
        if len(sessions_X) != len(sessions_y):
            raise ValueError(f"got {len(sessions_X)} neural arrays but {len(sessions_y)} label arrays")
        if not sessions_X:
            raise ValueError("no sessions given")
        neural = [_check_neural(x, f"session {i}") for i, x in enumerate(sessions_X)]
        labels = [_check_labels(l, x.shape[0], f"session {i}") for i, (x, l) in enumerate(zip(neural, sessions_y))]
        for i, l in enumerate(labels):
            if l.shape[1] != labels[0].shape[1]:
                raise ValueError(
                    f"session {i}: labels have {l.shape[1]} columns but session 0's have {labels[0].shape[1]}; "
                    "all sessions need the same label width"
                )
            if multi and l.shape[0] <= self.time_offsets:
                raise ValueError(
                    f"session {i}: {l.shape[0]} samples leave no label differences at time_offsets={self.time_offsets}"
                )

        self.device_ = device
        self.seed_ = int(self.seed) if self.seed is not None else secrets.randbits(31)
        self.num_sessions_ = len(neural) if multi else None
        self.n_features_in_ = [x.shape[1] for x in neural] if multi else neural[0].shape[1]
        self.label_dim_ = labels[0].shape[1]

        models = build_models([x.shape[1] for x in neural], self.num_hidden_units, self.output_dimension, self.seed_)
        models = [m.to(self.device_) for m in models]
        neural_t = [torch.from_numpy(x).to(self.device_) for x in neural]
        labels_t = [torch.from_numpy(l).to(self.device_) for l in labels]
        sampler = make_sampler(labels_t, self.time_offsets, self.seed_, self.device_, multi)

        checkpoint = None
        if self.checkpoint_path is not None:
            if self.seed is None:
                raise ValueError("a resumable fit (checkpoint_path set) needs a fixed seed")
            params = {k: v for k, v in self.get_params().items() if k not in ("verbose", "checkpoint_path")}
            params["device"] = self.device_  # the sampler's RNG state only resumes on the same kind of device
            checkpoint = Checkpoint(Path(self.checkpoint_path), self.checkpoint_every, _fingerprint(params, neural + labels))

        log = train(
            models,
            neural_t,
            sampler,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            temperature=self.temperature,
            max_iterations=self.max_iterations,
            generator=sampler.generator,
            checkpoint=checkpoint,
            verbose=self.verbose,
        )
        self._set_log(log.cpu())
        self.model_ = torch.nn.ModuleList(models) if multi else models[0]
        if multi:  # the shared space as the trained sessions give it, for adapt()
            self._extra_state = {
                "trained_labels": [l.cpu() for l in labels_t],
                "trained_embeddings": [embed_sequence(m, x).cpu() for m, x in zip(models, neural_t)],
                "template_hidden": first_layer_preactivations(models[0], neural_t[0]).cpu(),
            }
        return self

    # ------------------------------------------------------------------ new sessions
    def adapt(
        self, X_new, y_new, max_iterations: int | None = None, *,
        layers: str = DEFAULT_LAYERS, init: str = DEFAULT_INIT, learning_rate: float | None = None,
    ) -> int:  # fmt: skip
        """Fit an encoder for a new, unseen session into this multi-session space; returns its session_id.

        The new encoder is a copy of session 0's with its own first layer, started by regression
        onto session 0's first layer at label-matched samples (`init="regression"`, or `"random"`),
        and trained (`layers="all"`, or only the `"first"` layer) against the trained sessions'
        fixed embeddings; trained encoders never change. See `cebra_core.engine.adaptation`.
        `max_iterations` and `learning_rate` default to the model's own.
        """
        encoders = self._encoders()
        if self.num_sessions_ is None:
            raise ValueError("adapt() needs a multi-session model (fit it with lists of sessions)")
        if init not in ADAPT_INITS:
            raise ValueError(f"init={init!r} is not supported; supported: {', '.join(ADAPT_INITS)}")
        if init == "regression" and "template_hidden" not in self._extra_state:
            raise ValueError(
                "adapt(init='regression') needs session 0's first-layer activations, which models saved "
                "before this option do not store: refit the model, or pass init='random'"
            )
        new_id = len(encoders)
        where = f"new session {new_id}"
        X_new = _check_neural(X_new, where)
        y_new = _check_labels(y_new, X_new.shape[0], where)
        trained_labels = self._extra_state["trained_labels"]
        if y_new.shape[1] != trained_labels[0].shape[1]:
            raise ValueError(
                f"{where}: labels have {y_new.shape[1]} columns but the model was trained on {trained_labels[0].shape[1]}"
            )
        if X_new.shape[0] <= self.time_offsets:
            raise ValueError(f"{where}: {X_new.shape[0]} samples leave no label differences at time_offsets={self.time_offsets}")
        iterations = self.max_iterations if max_iterations is None else int(max_iterations)
        learning_rate = self.learning_rate if learning_rate is None else float(learning_rate)
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
        device = next(encoders[0].parameters()).device
        seed = self._adapt_seed(new_id)
        encoder = new_session_encoder(encoders[0], X_new.shape[1], seed, layers)
        neural = torch.from_numpy(X_new).to(device)
        labels = torch.from_numpy(y_new).to(device)
        if init == "regression":
            hidden = self._extra_state["template_hidden"].to(device)
            regression_init(encoder, neural, labels, hidden, trained_labels[0][:-1].to(device))
        generator = torch.Generator(device=sampling_device(device)).manual_seed(seed)
        sampler = AdaptationSampler(labels, trained_labels, self.time_offsets, generator, device)
        table = window_embedding_table([z.to(device) for z in self._extra_state["trained_embeddings"]])
        train(
            [encoder],
            [neural],
            sampler,
            batch_size=self.batch_size,
            learning_rate=learning_rate,
            temperature=self.temperature,
            max_iterations=iterations,
            generator=generator,
            parameters=[p for p in encoder.parameters() if p.requires_grad],
            step=functools.partial(adaptation_step, trained_embeddings=table),
            verbose=self.verbose,
        )
        encoder.requires_grad_(True)
        self.model_.append(encoder)
        self.num_sessions_ = len(self.model_)
        self.n_features_in_ = [e.num_input for e in self.model_]
        return new_id

    def _adapt_seed(self, new_id: int) -> int:
        """The seed of a new session's fresh first layer and sampler: the model's seed plus its id."""
        return self.seed_ + new_id

    def untrained_encoder(self, num_neurons: int):
        """An untrained encoder for the next new session of `num_neurons` neurons (the fresh random
        first layer `adapt` draws, before any initialisation or training, in front of the trained
        later layers), as a function (T, num_neurons) -> (T, output_dimension): the new session's
        baseline."""
        encoders = self._encoders()
        encoder = new_session_encoder(encoders[0], num_neurons, self._adapt_seed(len(encoders)))

        def embed(X) -> np.ndarray:
            X = _check_neural(X, "untrained encoder")
            with torch.no_grad():
                return embed_sequence(encoder, torch.from_numpy(X).to(self.device_)).cpu().numpy()

        return embed

    def _set_log(self, log: torch.Tensor) -> None:
        self.log_ = {name: log[:, j].tolist() for j, name in enumerate(LOG_COLUMNS)}
        self.log_["temperature"] = [float(self.temperature)] * log.shape[0]
        self.loss_history_ = log[:, LOG_COLUMNS.index("total")].numpy().copy()

    # ------------------------------------------------------------------ transform
    def _encoders(self) -> list[Offset10Model]:
        if not hasattr(self, "model_"):
            raise ValueError("this CEBRA model is not fitted yet: call fit() first")
        return list(self.model_) if self.num_sessions_ is not None else [self.model_]

    def _select_encoder(self, session_id: int | None) -> tuple[Offset10Model, str]:
        encoders = self._encoders()
        if self.num_sessions_ is None:
            if session_id not in (None, 0):
                raise ValueError(f"session_id={session_id!r} given, but this is a single-session model (use None)")
            return encoders[0], "the session"
        if session_id is None:
            raise ValueError(f"this is a multi-session model: pass session_id in [0, {len(encoders)})")
        if not isinstance(session_id, (int, np.integer)) or isinstance(session_id, bool) or not 0 <= session_id < len(encoders):
            raise ValueError(f"session_id={session_id!r} is out of range: this model has sessions 0..{len(encoders) - 1}")
        return encoders[session_id], f"session {session_id}"

    def transform(self, X, session_id: int | None = None, batch_size: int | None = None) -> np.ndarray:
        """Embed a (T, N) recording -> (T, output_dimension) float32, one row per input row."""
        encoder, where = self._select_encoder(session_id)
        X = _check_neural(X, where)
        if X.shape[1] != encoder.num_input:
            raise ValueError(
                f"{where}: data has {X.shape[1]} neurons but the model was trained on {encoder.num_input}"
            )
        if batch_size is not None:
            _check_positive_int(batch_size, "batch_size")
        device = next(encoder.parameters()).device
        x = torch.from_numpy(X).to(device)
        if batch_size is None or X.shape[0] <= 2 * batch_size:
            return embed_sequence(encoder, x).cpu().numpy()
        # contiguous chunks with a halo; equal to the unbatched result (edges replicate-padded once)
        left, right = OFFSET_LEFT, OFFSET_RIGHT - 1  # samples before / after the centre of a window
        padded = torch.nn.functional.pad(x.T[None], (left, right), mode="replicate")[0].T
        chunks = [
            embed_sequence(encoder, padded[start : min(start + batch_size, X.shape[0]) + left + right])[left:-right]
            for start in range(0, X.shape[0], batch_size)
        ]
        return torch.cat(chunks).cpu().numpy()

    def fit_transform(self, X, y) -> np.ndarray | list[np.ndarray]:
        self.fit(X, y)
        if self.num_sessions_ is None:
            return self.transform(X)
        return [self.transform(x, session_id=i) for i, x in enumerate(X)]

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write parameters, weights and loss log to one file (atomically)."""
        encoders = self._encoders()
        state = {
            "format": SAVE_FORMAT,
            "params": self.get_params(),
            "seed_": self.seed_,
            "num_sessions": self.num_sessions_,
            "num_neurons": [e.num_input for e in encoders],
            "label_dim": self.label_dim_,
            "state_dicts": [{k: v.cpu() for k, v in e.state_dict().items()} for e in encoders],
            "log": torch.tensor([self.log_[c] for c in LOG_COLUMNS]).T,
            "extra": getattr(self, "_extra_state", {}),
        }
        atomic_torch_save(state, Path(path))

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "CEBRA":
        """Load a model written by `save` (tensors only: nothing is unpickled beyond plain data)."""
        try:
            state = torch.load(Path(path), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as error:  # not a torch file, or one holding more than plain data
            raise ValueError(f"{path}: not a cebra_core model file ({type(error).__name__})") from None
        if not isinstance(state, dict) or state.get("format") != SAVE_FORMAT:
            raise ValueError(f"{path}: not a cebra_core model file")
        model = cls(**state["params"])
        model.device_ = resolve_device(device)
        model.seed_ = state["seed_"]
        model.num_sessions_ = state["num_sessions"]
        model.label_dim_ = state["label_dim"]
        model._extra_state = state["extra"]
        encoders = []
        for n, weights in zip(state["num_neurons"], state["state_dicts"]):
            encoder = Offset10Model(n, model.num_hidden_units, model.output_dimension)
            encoder.load_state_dict(weights)
            encoders.append(encoder.to(model.device_))
        multi = model.num_sessions_ is not None
        model.model_ = torch.nn.ModuleList(encoders) if multi else encoders[0]
        model.n_features_in_ = state["num_neurons"] if multi else state["num_neurons"][0]
        model._set_log(state["log"])
        return model
