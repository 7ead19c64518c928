"""`CEBRA`: the scikit-learn-style front door, a drop-in for `cebra.CEBRA`.

`fit(X, *y)` trains one session, `fit([X1, X2, ...], *y)` one encoder per session with positives
and negatives shared across sessions; each label is an array (a list of arrays, one per session,
for multi-session): float arrays are continuous labels, integer arrays a discrete one, as in CEBRA.
`transform` embeds one row per input row. Unlike cebra 0.6.1 it takes a `seed` (same data +
parameters + seed = bit-identical result on CPU), can checkpoint and resume an interrupted fit,
has a `causal` window, and adapts a new session into a multi-session model (`adapt`).

It follows scikit-learn's estimator protocol (`get_params`/`set_params`, `clone`, `Pipeline`,
`GridSearchCV`) without depending on scikit-learn: the parameters are the constructor's
arguments, learned state ends with ``_``, `fit` returns the estimator. docs/engine.md lists the
checks of sklearn's `check_estimator` that do not apply, and why.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import secrets
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from cebra_core.engine import cebra_format
from cebra_core.engine.adaptation import (
    ADAPT_INITS,
    DEFAULT_INIT,
    DEFAULT_LAYERS,
    DEFAULT_OWN_NEGATIVES,
    adaptation_step,
    first_layer_preactivations,
    new_session_encoder,
    regression_init,
    window_embedding_table,
)
from cebra_core.engine.architectures import ARCHITECTURES, Offset, architecture
from cebra_core.engine.loss import DISTANCES, MIN_TEMPERATURE, TEMPERATURE_MODES, Criterion
from cebra_core.engine.model import Encoder, build_models, embed_sequence
from cebra_core.engine.streaming import Stream
from cebra_core.engine.sampling import CONDITIONALS, AdaptationSampler, Labels, make_sampler, sampling_device
from cebra_core.engine.training import LOG_COLUMNS, Checkpoint, atomic_torch_save, train
from cebra_core.sessions.validation import InputError

SAVE_FORMAT = "cebra_core.CEBRA/2"
SAVE_FORMATS = ("cebra_core", "cebra")  # our own file, or one that CEBRA 0.6.1's CEBRA.load opens

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


def _check_neural(X, where: str, min_rows: int) -> np.ndarray:
    if type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{where}: sparse input is not supported: give a dense (time, neurons) array, e.g. X.toarray()")
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{where}: neural data must be 2-D (time, neurons), got shape {X.shape}. Reshape your data "
                         "with X.reshape(-1, 1) if it is one neuron")
    if X.dtype == object:  # numbers in an object array (a TypeError names the first non-number)
        X = X.astype(np.float64)
    if np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"{where}: Complex data not supported: neural data must be real, got dtype {X.dtype}")
    if not np.issubdtype(X.dtype, np.number) and X.dtype != bool:
        raise ValueError(f"{where}: neural data must be numeric, got dtype {X.dtype}")
    if X.shape[1] == 0:
        raise ValueError(f"{where}: 0 feature(s) (shape={X.shape}) while a minimum of 1 is required: neural data "
                         "need at least one neuron")
    X = X.astype(np.float32)
    if X.shape[0] < min_rows:
        raise ValueError(f"{where}: {X.shape[0]} samples is shorter than the model's receptive field ({min_rows})")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise ValueError(f"{where}: neural data contains NaN or inf (first at row {int(np.argmax(bad))})")
    return X


def _check_labels(ys: Sequence, num_samples: int, where: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(continuous (T, c) float32 or None, discrete (T,) int64 or None) from label arrays: float arrays
    are continuous (concatenated), an integer array is the discrete label (at most one), as in CEBRA."""
    continuous, discrete = [], []
    for y in ys:
        if y is None:
            continue
        y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        if y.shape[:1] != (num_samples,):
            raise ValueError(f"{where}: neural data has {num_samples} rows but labels have shape {y.shape}")
        if np.issubdtype(y.dtype, np.floating):
            y = y[:, None] if y.ndim == 1 else y
            if y.ndim != 2:
                raise ValueError(f"{where}: continuous labels must be 1-D or 2-D (time, columns), got shape {y.shape}")
            if not np.isfinite(y).all():
                raise ValueError(f"{where}: labels contain NaN or inf (first at row {int(np.argmax(~np.isfinite(y).all(1)))})")
            continuous.append(y.astype(np.float32))
        elif np.issubdtype(y.dtype, np.integer) and y.dtype != bool:
            if y.ndim != 1:
                raise ValueError(f"{where}: a discrete label must be 1-D (one class per row), got shape {y.shape}")
            if (y < 0).any():
                raise ValueError(f"{where}: discrete classes must be 0, 1, 2, …; got {int(y.min())}")
            discrete.append(y.astype(np.int64))
        else:
            raise ValueError(f"{where}: Unknown label type: labels of dtype {y.dtype}; give float arrays (continuous "
                             "labels) or one integer array (a discrete label)")
    if len(discrete) > 1:
        raise ValueError(f"{where}: {len(discrete)} discrete labels; CEBRA takes at most one")
    return (np.concatenate(continuous, axis=1) if continuous else None), (discrete[0] if discrete else None)


def _check_positive_int(value, name: str) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _fingerprint(params: dict, arrays: Sequence[np.ndarray | None]) -> str:
    """Hash of the parameters and the exact data, so a checkpoint is only resumed by the same fit."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for a in arrays:
        if a is not None:
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _torch_labels(continuous, discrete, device, length: int) -> Labels:
    return Labels(None if continuous is None else torch.from_numpy(continuous).to(device),
                  None if discrete is None else torch.from_numpy(discrete).to(device), length)


class CEBRA:
    """CEBRA (-Behavior or -Time): one encoder per session trained with InfoNCE; see the module docstring."""

    def __init__(
        self,
        model_architecture: str = "offset10-model",
        batch_size: int = 512,
        learning_rate: float = 3e-4,
        temperature: float = 1.0,
        temperature_mode: str = "constant",
        min_temperature: float | None = MIN_TEMPERATURE,
        output_dimension: int = 3,
        max_iterations: int = 10000,
        max_adapt_iterations: int = 500,
        distance: str = "cosine",
        conditional: str = "time_delta",
        time_offsets: int = 10,
        delta: float | None = None,
        device: str = "cuda_if_available",
        verbose: bool = False,
        num_hidden_units: int = 32,
        causal: bool = False,
        seed: int | None = None,
        checkpoint_path: str | Path | None = None,
        checkpoint_every: int = 500,
    ):
        self.model_architecture = model_architecture
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.temperature = temperature
        self.temperature_mode = temperature_mode
        self.min_temperature = min_temperature
        self.output_dimension = output_dimension
        self.max_iterations = max_iterations
        self.max_adapt_iterations = max_adapt_iterations
        self.distance = distance
        self.conditional = conditional
        self.time_offsets = time_offsets
        self.delta = delta
        self.device = device
        self.verbose = verbose
        self.num_hidden_units = num_hidden_units
        self.causal = causal
        self.seed = seed
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every

    # ------------------------------------------------------------------ parameters (sklearn's protocol)
    @classmethod
    def _get_param_names(cls) -> list[str]:
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's arguments as set (scikit-learn's protocol; ``deep`` has nothing to descend into)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params) -> "CEBRA":
        """Set constructor arguments by name (scikit-learn's protocol); an unknown name is a ValueError."""
        names = self._get_param_names()
        for name, value in params.items():
            if name not in names:
                raise ValueError(f"{name!r} is not a parameter of CEBRA; parameters: {', '.join(names)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {n: p.default for n, p in inspect.signature(type(self).__init__).parameters.items() if n != "self"}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k]]
        return f"CEBRA({', '.join(changed)})"

    def __sklearn_tags__(self):
        """scikit-learn's tags (read by scikit-learn only, which is imported here, not by cebra_core):
        a transformer that needs a fit, on 2-D numeric input (labels optional); float32 output, so it
        preserves float32 only; not deterministic without a seed."""
        from sklearn.utils import Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=["float32"]), non_deterministic=self.seed is None)

    def _architecture(self):
        return architecture(self.model_architecture)

    @property
    def offset_(self) -> Offset:
        """The window of an embedding row (centred as CEBRA's, or causal)."""
        return self._architecture().offset(bool(self.causal))

    def _check_params(self) -> None:
        choices = {"model_architecture": ARCHITECTURES, "distance": DISTANCES, "conditional": CONDITIONALS,
                   "temperature_mode": TEMPERATURE_MODES}
        for name, supported in choices.items():
            if getattr(self, name) not in supported:
                raise ValueError(f"{name}={getattr(self, name)!r} is not supported; supported: {', '.join(supported)}")
        for name in ("batch_size", "max_iterations", "max_adapt_iterations", "output_dimension", "time_offsets",
                     "checkpoint_every"):  # fmt: skip
            _check_positive_int(getattr(self, name), name)
        if not isinstance(self.num_hidden_units, (int, np.integer)) or self.num_hidden_units < self._architecture().min_units:
            raise ValueError(f"num_hidden_units must be an integer >= {self._architecture().min_units} for "
                             f"{self.model_architecture}, got {self.num_hidden_units!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature!r}")
        if self.temperature_mode == "auto" and self.min_temperature is not None and not self.min_temperature > 0:
            raise ValueError(f"min_temperature must be positive (or None), got {self.min_temperature!r}")
        if self.conditional == "delta" and not (self.delta is not None and self.delta > 0):
            raise ValueError(f"conditional='delta' needs delta > 0 (the positives' label noise), got {self.delta!r}")

    def _criterion(self) -> Criterion:
        return Criterion(self.distance, self.temperature, self.temperature_mode, self.min_temperature)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, *more_y, adapt: bool = False) -> "CEBRA":
        """Train on one session (arrays) or several (lists of 2-D arrays, one encoder each).

        Labels are positional as in CEBRA (``fit(X, y1, y2)``); the first is also ``y=``, as
        scikit-learn passes it (``fit(X, y=y)``); a label of None is no label (CEBRA-Time).

        With ``adapt=True`` on a fitted single-session model, the new data (another neuron count)
        get a fresh first layer and only it trains, for ``max_adapt_iterations`` (CEBRA's
        ``fit(..., adapt=True)``); a multi-session model takes a new session with `adapt`, whose
        defaults differ (every layer of the new encoder, ``max_iterations`` steps).
        """
        y = (y, *more_y)  # the None labels are skipped
        self._check_params()
        if adapt and hasattr(self, "model_"):
            return self._adapt_single(X, *y)
        device = resolve_device(self.device)  # before the data: a missing GPU is the first thing said
        # a list of 2-D arrays is a list of sessions (as CEBRA); a nested list of numbers is one array
        multi = isinstance(X, (list, tuple)) and (not X or np.ndim(X[0]) == 2)
        sessions_X = list(X) if multi else [X]

        def per_session(label) -> bool:  # a list of arrays: one label per session
            return isinstance(label, (list, tuple)) and (
                multi or (len(label) > 0 and isinstance(label[0], (np.ndarray, torch.Tensor))))

        if any(label is not None and per_session(label) != multi for label in y):
            raise ValueError("give X and every label as lists (multi-session) or as arrays (one session)")
        label_sets = [list(label) if multi else [label] for label in y if label is not None]
        for label in label_sets:
            if len(label) != len(sessions_X):
                raise ValueError(f"got {len(sessions_X)} neural arrays but {len(label)} label arrays")
        if not sessions_X:
            raise ValueError("no sessions given")
        rows = len(self.offset_)
        neural = [_check_neural(x, f"session {i}", rows) for i, x in enumerate(sessions_X)]
        labels = [_check_labels([label[i] for label in label_sets], len(x), f"session {i}")
                  for i, x in enumerate(neural)]
        for i, (continuous, discrete) in enumerate(labels):
            first = labels[0]
            if (continuous is None) != (first[0] is None) or (discrete is None) != (first[1] is None) or (
                    continuous is not None and continuous.shape[1] != first[0].shape[1]):
                raise ValueError(f"session {i}: its labels differ in kind or width from session 0's; all sessions "
                                 "need the same label columns")
            if (continuous is not None or discrete is not None) and len(neural[i]) <= self.time_offsets and multi:
                raise ValueError(f"session {i}: {len(neural[i])} samples leave no label differences at "
                                 f"time_offsets={self.time_offsets}")

        self.device_ = device
        self.seed_ = int(self.seed) if self.seed is not None else secrets.randbits(31)
        self.num_sessions_ = len(neural) if multi else None
        self.n_features_in_ = [x.shape[1] for x in neural] if multi else neural[0].shape[1]
        self.label_kinds_ = {"continuous": None if labels[0][0] is None else labels[0][0].shape[1],
                             "discrete": labels[0][1] is not None}

        models = build_models([x.shape[1] for x in neural], self.num_hidden_units, self.output_dimension,
                              self.seed_, self.model_architecture)
        models = [m.to(device) for m in models]
        criterion = self._criterion().to(device)
        neural_t = [torch.from_numpy(x).to(device) for x in neural]
        labels_t = [_torch_labels(c, d, device, len(x)) for (c, d), x in zip(labels, neural)]
        sampler = make_sampler(labels_t, conditional=self.conditional, time_offset=self.time_offsets,
                               delta=self.delta, seed=self.seed_, device=device, multi=multi)
        checkpoint = self._checkpoint(neural + [a for pair in labels for a in pair])
        log = train(models, neural_t, sampler, criterion=criterion, offset=self.offset_, batch_size=self.batch_size,
                    learning_rate=self.learning_rate, max_iterations=self.max_iterations,
                    generator=sampler.generator, checkpoint=checkpoint, verbose=self.verbose)
        self._set_log(log.cpu())
        self.model_ = torch.nn.ModuleList(models) if multi else models[0]
        self.criterion_ = criterion
        self._extra_state = {}
        if multi:  # the shared space as the trained sessions give it, for adapt()
            self._extra_state = {
                "trained_continuous": [None if c is None else torch.from_numpy(c) for c, _ in labels],
                "trained_discrete": [None if d is None else torch.from_numpy(d) for _, d in labels],
                "trained_embeddings": [embed_sequence(m, x, self.offset_).cpu() for m, x in zip(models, neural_t)],
                "template_hidden": first_layer_preactivations(models[0], neural_t[0]).cpu(),
            }
        return self

    def _checkpoint(self, arrays: list) -> Checkpoint | None:
        if self.checkpoint_path is None:
            return None
        if self.seed is None:
            raise ValueError("a resumable fit (checkpoint_path set) needs a fixed seed")
        params = {k: v for k, v in self.get_params().items() if k not in ("verbose", "checkpoint_path")}
        params["device"] = self.device_  # the sampler's RNG state only resumes on the same kind of device
        return Checkpoint(Path(self.checkpoint_path), self.checkpoint_every, _fingerprint(params, arrays))

    # ------------------------------------------------------------------ new sessions
    def _adapt_single(self, X, *y) -> "CEBRA":
        """CEBRA's fit(adapt=True): a fresh first layer for the new data, every later layer frozen,
        ``max_adapt_iterations`` steps with a fresh optimiser and criterion (checkpointed like a fit)."""
        if self.num_sessions_ is not None:
            raise ValueError("fit(..., adapt=True) adapts a single-session model; for a multi-session model "
                             "use adapt(X, *y), which adds the new session")
        neural = _check_neural(X, "new session", len(self.offset_))
        continuous, discrete = _check_labels(list(y), len(neural), "new session")
        self._check_same_label_kinds(continuous, discrete, "new session")
        device = next(self.model_.parameters()).device
        encoder = new_session_encoder(self.model_, neural.shape[1], self._adapt_seed(1), layers="first")
        criterion = self._criterion().to(device)
        labels = _torch_labels(continuous, discrete, device, len(neural))
        sampler = make_sampler([labels], conditional=self.conditional, time_offset=self.time_offsets,
                               delta=self.delta, seed=self._adapt_seed(1), device=device, multi=False)
        checkpoint = self._checkpoint([neural, continuous, discrete, *(
            p.detach().cpu().numpy() for p in self.model_.parameters())])
        log = train([encoder], [torch.from_numpy(neural).to(device)], sampler, criterion=criterion,
                    offset=self.offset_, batch_size=self.batch_size, learning_rate=self.learning_rate,
                    max_iterations=self.max_adapt_iterations, generator=sampler.generator,
                    parameters=[p for p in encoder.parameters() if p.requires_grad] + list(criterion.parameters()),
                    checkpoint=checkpoint, verbose=self.verbose)
        encoder.requires_grad_(True)
        self.model_ = encoder
        self.criterion_ = criterion
        self.n_features_in_ = neural.shape[1]
        self._set_log(log.cpu())
        return self

    def _check_same_label_kinds(self, continuous, discrete, where: str) -> None:
        kinds = {"continuous": None if continuous is None else continuous.shape[1], "discrete": discrete is not None}
        if kinds != self.label_kinds_:
            raise ValueError(f"{where}: labels {kinds} differ from the ones the model was trained on {self.label_kinds_}")

    def adapt(
        self, X_new, *y_new, max_iterations: int | None = None,
        layers: str = DEFAULT_LAYERS, init: str = DEFAULT_INIT, learning_rate: float | None = None,
        own_negatives: bool = DEFAULT_OWN_NEGATIVES,
    ) -> int:  # fmt: skip
        """Fit an encoder for a new, unseen session into this multi-session space; returns its session_id.

        The new encoder is a copy of session 0's with its own first layer, started by regression
        onto session 0's first layer at label-matched samples (`init="regression"`, or `"random"`),
        and trained (`layers="all"`, or only the `"first"` layer) against the trained sessions'
        fixed embeddings; trained encoders never change. ``own_negatives``: the new session's own
        samples are negatives too, as in a multi-session fit with it. See `cebra_core.engine.adaptation`.
        `max_iterations` and `learning_rate` default to the model's own. With ``checkpoint_path``
        set, it checkpoints and resumes like a fit.
        """
        encoders = self._encoders()
        if self.num_sessions_ is None:
            raise ValueError("adapt() adds a session to a multi-session model; a single-session model adapts "
                             "with fit(X, *y, adapt=True)")
        if "trained_embeddings" not in getattr(self, "_extra_state", {}):
            raise ValueError("adapt() needs the training data of the trained sessions (their labels and "
                             "embeddings), which a model loaded from CEBRA's file format does not have; fit the "
                             "multi-session model with cebra_core (or load one saved with format='cebra_core')")
        if init not in ADAPT_INITS:
            raise ValueError(f"init={init!r} is not supported; supported: {', '.join(ADAPT_INITS)}")
        new_id = len(encoders)
        where = f"new session {new_id}"
        X_new = _check_neural(X_new, where, len(self.offset_))
        continuous, discrete = _check_labels(list(y_new), len(X_new), where)
        self._check_same_label_kinds(continuous, discrete, where)
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
        labels = _torch_labels(continuous, discrete, device, len(X_new))
        trained = [Labels(c, d) for c, d in zip(self._extra_state["trained_continuous"],
                                                 self._extra_state["trained_discrete"])]
        generator = torch.Generator(device=sampling_device(device)).manual_seed(seed)
        # the sampler first: it refuses labels it cannot place a session by (none, or conditional time)
        sampler = AdaptationSampler(labels, trained, conditional=self.conditional, time_offset=self.time_offsets,
                                    delta=self.delta, generator=generator, device=device,
                                    own_negatives=bool(own_negatives))
        if init == "regression":
            hidden = self._extra_state["template_hidden"]
            regression_init(encoder, neural, labels, hidden, trained[0])
        table = window_embedding_table([z.to(device) for z in self._extra_state["trained_embeddings"]], self.offset_)
        criterion = self._criterion().to(device)
        # the fingerprint holds the trained model too (its sessions' embeddings, the adaptation's target)
        checkpoint = self._checkpoint([X_new, continuous, discrete, np.array([new_id, iterations]),
                                       np.array([learning_rate]), np.frombuffer(f"{layers}/{init}/{bool(own_negatives)}".encode(), np.uint8),
                                       *(z.cpu().numpy() for z in self._extra_state["trained_embeddings"])])
        train([encoder], [neural], sampler, criterion=criterion, offset=self.offset_, batch_size=self.batch_size,
              learning_rate=learning_rate, max_iterations=iterations, generator=generator,
              parameters=[p for p in encoder.parameters() if p.requires_grad] + list(criterion.parameters()),
              step=functools.partial(adaptation_step, trained_embeddings=table), checkpoint=checkpoint,
              verbose=self.verbose)
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
            X = _check_neural(X, "untrained encoder", len(self.offset_))
            with torch.no_grad():
                return embed_sequence(encoder, torch.from_numpy(X).to(self.device_), self.offset_).cpu().numpy()

        return embed

    def _set_log(self, log: torch.Tensor) -> None:
        self.log_ = {name: log[:, j].tolist() for j, name in enumerate(LOG_COLUMNS)}
        self.loss_history_ = log[:, LOG_COLUMNS.index("total")].numpy().copy()

    # ------------------------------------------------------------------ transform
    def _encoders(self) -> list[Encoder]:
        if not hasattr(self, "model_"):
            raise ValueError("this CEBRA model is not fitted yet: call fit() first")
        return list(self.model_) if self.num_sessions_ is not None else [self.model_]

    def _select_encoder(self, session_id: int | None) -> tuple[Encoder, str]:
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
        offset = self.offset_
        X = _check_neural(X, where, len(offset))
        if X.shape[1] != encoder.num_input:
            raise ValueError(
                f"{where}: data has {X.shape[1]} neurons but the model was trained on {encoder.num_input} "
                f"(X has {X.shape[1]} features, but CEBRA is expecting {encoder.num_input} features as input)"
            )
        if batch_size is not None:
            _check_positive_int(batch_size, "batch_size")
        device = next(encoder.parameters()).device
        x = torch.from_numpy(X).to(device)
        if batch_size is None or X.shape[0] <= 2 * batch_size:
            return embed_sequence(encoder, x, offset).cpu().numpy()
        # contiguous chunks with a halo; equal to the unbatched result (edges replicate-padded once)
        left, right = offset.left, offset.right - 1  # samples before / after the row of a window
        padded = torch.nn.functional.pad(x.T[None], (left, right), mode="replicate")[0].T
        edge = Offset(0, 1)  # the halo is already in each chunk: embed it without padding
        chunks = []
        for start in range(0, X.shape[0], batch_size):
            stop = min(start + batch_size, X.shape[0])
            piece = padded[start: stop + left + right]
            z = embed_sequence(encoder, piece, edge) if len(offset) == 1 else _valid(encoder, piece)
            chunks.append(z)
        return torch.cat(chunks).cpu().numpy()

    def stream(self, session_id: int | None = None) -> Stream:
        """A `Stream` that embeds one session's new bins as they arrive, each from the last window only
        (a causal model: ``causal=True``); its embeddings equal `transform`'s, bin for bin."""
        encoder, where = self._select_encoder(session_id)
        return Stream(encoder, len(self.offset_), bool(self.causal), where)

    def fit_transform(self, X, y=None, *more_y, adapt: bool = False) -> np.ndarray | list[np.ndarray]:
        """`fit`, then `transform` of the training data (every session's, for a multi-session model);
        labels as in `fit`: ``fit_transform(X, y)`` and ``fit_transform(X, y=y)`` (scikit-learn's
        calls) are the same."""
        self.fit(X, y, *more_y, adapt=adapt)
        if self.num_sessions_ is None:
            return self.transform(X)
        return [self.transform(x, session_id=i) for i, x in enumerate(X)]

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, format: str = "cebra_core") -> None:
        """Write the model to one file, atomically: ``cebra_core`` (parameters, weights, loss log and
        what `adapt` needs; read with plain tensors only) or ``cebra`` (a file CEBRA 0.6.1's
        ``cebra.CEBRA.load`` opens: `cebra_core.engine.cebra_format`)."""
        encoders = self._encoders()
        if format == "cebra":
            cebra_format.save(self, Path(path))
            return
        if format != "cebra_core":
            raise ValueError(f"format={format!r} is not supported; supported: {', '.join(SAVE_FORMATS)}")
        # a checkpoint belongs to the job that trains, not to the model: a loaded model that trains
        # again (fit, adapt) checkpoints only where its new owner says
        params = {**self.get_params(), "checkpoint_path": None}
        state = {
            "format": SAVE_FORMAT,
            "params": params,
            "seed_": self.seed_,
            "num_sessions": self.num_sessions_,
            "num_neurons": [e.num_input for e in encoders],
            "label_kinds": self.label_kinds_,
            "state_dicts": [{k: v.cpu() for k, v in e.state_dict().items()} for e in encoders],
            "criterion": {k: v.cpu() for k, v in self.criterion_.state_dict().items()},
            "log": torch.tensor([self.log_[c] for c in LOG_COLUMNS]).T,
            "extra": self._extra_state,
        }
        atomic_torch_save(state, Path(path))

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "CEBRA":
        """Load a model written by `save` in either format, or by CEBRA 0.6.1's ``CEBRA.save``
        (nothing is unpickled beyond plain data and the few CEBRA classes its files name: a saved
        GPU model loads on a machine without one)."""
        state = cebra_format.read(path)
        if cebra_format.is_cebra(state):
            return cebra_format.from_cebra(cls, state, resolve_device(device))
        if not isinstance(state, dict) or state.get("format") != SAVE_FORMAT:
            raise ValueError(f"{path}: not a cebra_core or CEBRA model file")
        model = cls(**state["params"])
        model.device_ = resolve_device(device)
        model.seed_ = state["seed_"]
        model.num_sessions_ = state["num_sessions"]
        model.label_kinds_ = state["label_kinds"]
        model._extra_state = state["extra"]
        model._set_weights(state["num_neurons"], state["state_dicts"], state["criterion"])
        model._set_log(state["log"])
        return model

    def _set_weights(self, num_neurons: list[int], state_dicts: list[dict], criterion: dict) -> None:
        """Build the encoders (and criterion) on ``device_`` and load their weights."""
        encoders = []
        for n, weights in zip(num_neurons, state_dicts):
            encoder = Encoder(n, self.num_hidden_units, self.output_dimension, self.model_architecture)
            encoder.load_state_dict(weights)
            encoders.append(encoder.to(self.device_))
        multi = self.num_sessions_ is not None
        self.model_ = torch.nn.ModuleList(encoders) if multi else encoders[0]
        self.n_features_in_ = list(num_neurons) if multi else num_neurons[0]
        self.criterion_ = self._criterion()
        self.criterion_.load_state_dict(criterion)
        self.criterion_.to(self.device_)


@torch.no_grad()
def _valid(encoder: Encoder, rows: torch.Tensor) -> torch.Tensor:
    """The encoder over (T, N) rows without padding: T - field + 1 output rows."""
    was_training = encoder.training
    encoder.eval()
    try:
        return encoder.net(rows.T[None])[0].T  # not encoder(): its forward squeezes a single output row away
    finally:
        encoder.train(was_training)
