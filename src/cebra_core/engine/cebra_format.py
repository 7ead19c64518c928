"""CEBRA 0.6.1's model file, both ways: `to_cebra` writes what ``cebra.CEBRA.load`` opens, and
`from_cebra` builds a `CEBRA` from a file ``cebra.CEBRA.save`` wrote; `read` opens either kind of
file without unpickling anything but plain data and the few classes CEBRA's files name.

CEBRA's file (``save(path)``, its default backend "sklearn") is a ``torch.save``d dict: ``args``
(the estimator's constructor arguments), ``state`` (``label_types_``, ``device_``, ``n_features_``,
``n_features_in_``, ``num_sessions_``, ``offset_``, ``solver_name_``) and ``state_dict`` (the
solver's: ``model``, ``criterion``, ``optimizer``, ``loss``, ``decode``, ``log``, and for
multi-session ``num_sessions``). It names three classes besides tensors: CEBRA's
``cebra.data.datatypes.Offset``, numpy's dtypes and torch's ``TorchVersion``. CEBRA itself loads
it with a full unpickle (``weights_only=False``); `read` allows those classes and nothing else, and
CEBRA's ``Offset`` is read into a stand-in (so CEBRA need not be installed). `save` writes the
stand-in back under CEBRA's class name (`_Pickler`), so CEBRA's ``load`` gets a real ``Offset``.

Both directions give the same ``transform`` to float32 rounding (bit-identical on CPU in
tests/unit/test_cebra_format.py) for every architecture of `ARCHITECTURES`, single- and
multi-session. What a CEBRA file cannot carry: the seed, the training data a multi-session model
needs to `adapt` a new session, causal windows (refused when writing); what cebra_core does not keep:
Adam's moment estimates (written empty).
"""

from __future__ import annotations

import inspect
import os
import pickle
import re
import types
from pathlib import Path

import numpy as np
import torch

from cebra_core.engine.architectures import ARCHITECTURES
from cebra_core.sessions.files import atomic_output

CEBRA_KEYS = ("args", "state", "state_dict")


class Offset:
    """A stand-in for CEBRA's ``cebra.data.datatypes.Offset`` (slots ``left``, ``right``) in its files."""

    __slots__ = ("left", "right")

    def __len__(self) -> int:
        return self.left + self.right

    def __setstate__(self, state) -> None:
        _, slots = state if isinstance(state, tuple) else (None, state)
        for key, value in slots.items():
            setattr(self, key, value)


def _allowed() -> list:
    """The globals a CEBRA file may name beyond plain data: its Offset, numpy dtypes, TorchVersion."""
    dtypes = [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")]
    return [(Offset, "cebra.data.datatypes.Offset"), np.dtype, *dtypes, torch.torch_version.TorchVersion]


def read(path: str | os.PathLike) -> object:
    """The contents of a model file (cebra_core's or CEBRA's), on the CPU, plain data and tensors only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    try:
        with torch.serialization.safe_globals(_allowed()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # not a torch file, or one holding more than plain data
        raise ValueError(f"{path}: not a cebra_core or CEBRA model file ({_why(path, error)})") from None


def _why(path: Path, error: Exception) -> str:
    """Why `read` refused a file: the classes or functions it names beyond a model file's (found by
    scanning the pickle's opcodes, nothing is run), else the first line of torch's error."""
    try:
        allowed = {"cebra.data.datatypes.Offset", "numpy.dtype", "torch.torch_version.TorchVersion"}
        names = [n for n in torch.serialization.get_unsafe_globals_in_checkpoint(path)
                 if n not in allowed and not n.startswith("numpy.dtypes.")]
    except Exception:  # not a torch zip file at all
        names = []
    if names:
        return (f"it names {', '.join(names)}, which a model file does not hold; it was not unpickled: load only "
                "files you trust with torch.load(weights_only=False)")
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:200] if text else ''}"


def is_cebra(contents: object) -> bool:
    """Whether ``contents`` (from `read`) is a CEBRA 0.6.1 model file."""
    return isinstance(contents, dict) and all(key in contents for key in CEBRA_KEYS)


CEBRA_VERSION = "0.6.1"
# CEBRA's default ``optimizer_kwargs`` (a tuple of pairs, as its ``get_params`` gives it): the Adam
# settings cebra_core trains with
OPTIMIZER_KWARGS = (("betas", (0.9, 0.999)), ("eps", 1e-8), ("weight_decay", 0), ("amsgrad", False))
# cebra_core's conditional -> CEBRA's name for it ("delta" is CEBRA's deprecated alias of "delta_normal")
TO_CEBRA_CONDITIONAL = {"time_delta": "time_delta", "time": "time", "delta": "delta_normal"}
FROM_CEBRA_CONDITIONAL = {None: "time_delta", "time_delta": "time_delta", "time": "time", "delta": "delta",
                          "delta_normal": "delta"}
# Rows of a label_types_ shape where the training length is not known (a single-session model does
# not keep its training data): only the column count and the dtype of an entry are ever read by CEBRA
UNKNOWN_ROWS = 0


def _label_types(model) -> list:
    """CEBRA's ``label_types_`` from ``label_kinds_``: one (dtype, shape) per label (the continuous
    columns as one float32 (T, c) label, then the discrete one as int64 (T,)); per session for a
    multi-session model. T is a session's training length where the model kept it (multi-session),
    else `UNKNOWN_ROWS`."""
    kinds = model.label_kinds_
    extra = getattr(model, "_extra_state", {}) or {}

    def entries(rows: int) -> list:
        found = []
        if kinds.get("continuous") is not None:
            found.append((np.dtype("float32"), (rows, int(kinds["continuous"]))))
        if kinds.get("discrete"):
            found.append((np.dtype("int64"), (rows,)))
        return found

    if model.num_sessions_ is None:
        return entries(UNKNOWN_ROWS)
    rows = [UNKNOWN_ROWS] * model.num_sessions_
    for key in ("trained_continuous", "trained_discrete"):
        for s, label in enumerate(extra.get(key, [])[: model.num_sessions_]):
            if label is not None:
                rows[s] = int(label.shape[0])
    per_session = [entries(r) for r in rows]  # [session][label]
    return [list(column) for column in zip(*per_session)] if per_session and per_session[0] else []


def to_cebra(model) -> dict:
    """The dict CEBRA 0.6.1's ``CEBRA.load`` turns into a fitted ``cebra.CEBRA`` whose ``transform``
    equals ``model.transform`` (CPU tensors, ``device_`` cpu: it loads on any machine, CEBRA issue
    #295). Write it with `save` (it names CEBRA's ``Offset`` class, which plain ``torch.save``
    cannot).

    - ``args``: every CEBRA constructor argument, mapped from ours (``device`` cpu, Adam with the
      settings cebra_core trains with, ``pad_before_transform`` True: one row per input row as ours).
    - ``state``: ``label_types_`` from ``label_kinds_`` (see `_label_types`), ``offset_`` a CEBRA
      ``Offset`` of the architecture's receptive field, ``solver_name_`` single- or multi-session.
    - ``state_dict``: the encoders' weights (multi-session keys ``<s>.``), the criterion (with the
      learnable ``log_inverse_temperature`` in auto mode, as CEBRA's ``_prepare_criterion``), an
      Adam state with the right parameter group and no moment estimates (cebra_core does not keep
      them after a fit: a further CEBRA ``partial_fit`` restarts Adam's moments), the loss and log.

    A ``causal`` model is refused: CEBRA's transform centres every window.
    """
    encoders = model._encoders()
    if model.causal:
        raise ValueError("a causal model (causal=True) cannot be written in CEBRA's format: CEBRA's transform "
                         "centres every window, so its embedding would differ; save it with format='cebra_core'")
    if model.conditional not in TO_CEBRA_CONDITIONAL:
        raise ValueError(f"conditional={model.conditional!r} has no CEBRA equivalent; "
                         f"supported: {', '.join(TO_CEBRA_CONDITIONAL)}")
    multi = model.num_sessions_ is not None
    num_neurons = [int(e.num_input) for e in encoders]
    args = {
        "model_architecture": model.model_architecture,
        "device": "cpu",
        "criterion": "infonce",
        "distance": model.distance,
        "conditional": TO_CEBRA_CONDITIONAL[model.conditional],
        "temperature": float(model.temperature),
        "temperature_mode": model.temperature_mode,
        "min_temperature": None if model.min_temperature is None else float(model.min_temperature),
        "time_offsets": int(model.time_offsets),
        "delta": None if model.delta is None else float(model.delta),
        "max_iterations": int(model.max_iterations),
        "max_adapt_iterations": int(model.max_adapt_iterations),
        "batch_size": int(model.batch_size),
        "learning_rate": float(model.learning_rate),
        "optimizer": "adam",
        "output_dimension": int(model.output_dimension),
        "verbose": bool(model.verbose),
        "num_hidden_units": int(model.num_hidden_units),
        "pad_before_transform": True,
        "hybrid": False,
        "optimizer_kwargs": OPTIMIZER_KWARGS,
        "masking_kwargs": None,
    }
    offset = model.offset_  # centred (not causal): CEBRA's Offset of the architecture
    cebra_offset = Offset()
    cebra_offset.left, cebra_offset.right = int(offset.left), int(offset.right)
    state = {
        "label_types_": _label_types(model),
        "device_": "cpu",
        "n_features_": list(num_neurons) if multi else num_neurons[0],
        "n_features_in_": list(num_neurons) if multi else num_neurons[0],
        "num_sessions_": len(encoders) if multi else None,
        "offset_": cebra_offset,
        "solver_name_": "multi-session" if multi else "single-session",
    }
    weights = {}
    for s, encoder in enumerate(encoders):
        prefix = f"{s}." if multi else ""
        weights.update({prefix + k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()})
    parameters = [p for e in encoders for p in e.parameters()] + list(model.criterion_.parameters())
    # CEBRA builds Adam(chain(model params, criterion params), lr, **optimizer_kwargs) and loads this:
    # same torch, same param_groups keys; one parameter index per tensor, in that order
    optimizer = torch.optim.Adam([torch.zeros(p.shape) for p in parameters], lr=float(model.learning_rate),
                                 **dict(OPTIMIZER_KWARGS)).state_dict()
    log = {name: [float(v) for v in model.log_[name]] for name in ("pos", "neg", "total", "temperature")}
    state_dict = {
        "model": weights,
        "optimizer": optimizer,
        "loss": torch.tensor(log["total"], dtype=torch.float32),
        "decode": [],
        "criterion": {k: v.detach().cpu().clone() for k, v in model.criterion_.state_dict().items()},
        "version": CEBRA_VERSION,
        "log": log,
        "n_features": list(num_neurons) if multi else num_neurons[0],
    }
    if multi:
        state_dict["num_sessions"] = len(encoders)
    metadata = {"backend": "sklearn", "cebra_version": CEBRA_VERSION, "torch_version": str(torch.__version__),
                "numpy_version": str(np.__version__), "written_by": "cebra_core"}
    return {"args": args, "state": state, "state_dict": state_dict, "metadata": metadata}


class _Pickler(pickle._Pickler):
    """Python's pickler, except that cebra_core's `Offset` stand-in is written as CEBRA's class
    ``cebra.data.datatypes.Offset`` (CEBRA itself need not be installed): the GLOBAL, then NEWOBJ
    and the slot state (None, {'left', 'right'}) exactly as CEBRA's own files hold it."""

    def save_global(self, obj, name=None):
        if obj is not Offset:
            return super().save_global(obj, name)
        if self.proto >= 4:
            self.save("cebra.data.datatypes")
            self.save("Offset")
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + b"cebra.data.datatypes\nOffset\n")
        self.memoize(obj)


_PICKLE_MODULE = types.ModuleType("cebra_core_cebra_pickle")  # what torch.save needs of a pickle module
_PICKLE_MODULE.Pickler = _Pickler


def write(contents: dict, path: str | os.PathLike) -> None:
    """``torch.save`` ``contents`` (e.g. `to_cebra`'s) to ``path`` atomically (a crash never leaves
    half a file), with `Offset` stand-ins written as CEBRA's class."""
    with atomic_output(path) as tmp:
        torch.save(contents, tmp, pickle_module=_PICKLE_MODULE)


def save(model, path: str | os.PathLike) -> None:
    """Write `to_cebra(model)` to ``path`` for ``cebra.CEBRA.load(path)`` (`CEBRA.save`'s format "cebra")."""
    write(to_cebra(model), path)


def _label_kinds(label_types: list, multi: bool) -> dict:
    """cebra_core's ``label_kinds_`` from CEBRA's ``label_types_`` (float dtypes continuous, their
    columns added up; an integer dtype the discrete label; others, e.g. bool, CEBRA ignores)."""
    continuous, discrete = 0, False
    for entry in label_types:
        dtype, shape = entry[0] if multi else entry  # multi-session: [label][session]; session 0 stands for all
        if isinstance(dtype, torch.dtype):
            floating = dtype.is_floating_point
            integer = not floating and not dtype.is_complex and dtype != torch.bool
        else:
            dtype = np.dtype(dtype)
            floating = np.issubdtype(dtype, np.floating)
            integer = np.issubdtype(dtype, np.integer) and dtype != bool
        if floating:
            continuous += int(shape[1]) if len(shape) > 1 else 1
        elif integer:
            discrete = True
    return {"continuous": continuous or None, "discrete": discrete}


def _sizes(value) -> list[int]:
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def from_cebra(cls, contents: dict, device: str):
    """A fitted ``cls`` (cebra_core's CEBRA) from a CEBRA 0.6.1 model file's contents (`read`), on ``device``.

    Parameters come from ``args``. CEBRA's values that cebra_core does not have become valid ones
    (they only matter if the model is fitted again): ``batch_size`` None (CEBRA's full batch) is
    cebra_core's default batch size; ``conditional`` None is "time_delta" (what CEBRA's loaders use
    for it), "delta_normal" is "delta"; a ``time_offsets`` of one element is that element.
    ``optimizer_kwargs``, ``hybrid``, ``masking_kwargs`` and ``pad_before_transform`` are not kept:
    cebra_core trains with Adam's defaults and its transform always pads (one row per input row;
    a CEBRA model saved with pad_before_transform=False returned the rows without padding).
    The seed is unknown: ``seed_`` is 0 (only the fresh first layer of a later adapt draws from it).
    ``label_kinds_`` come from ``label_types_`` (none if the file lacks it). The training data are not
    in CEBRA's file, so a multi-session model cannot `adapt` a new session (it says so).
    """
    args, state, weights = contents["args"], contents["state"], contents["state_dict"]
    name = args.get("model_architecture")
    if name not in ARCHITECTURES:
        raise ValueError(f"this CEBRA model's architecture {name!r} is not supported by cebra_core; "
                         f"supported: {', '.join(ARCHITECTURES)}")
    if args.get("criterion", "infonce") != "infonce":
        raise ValueError(f"this CEBRA model's criterion {args['criterion']!r} is not supported; supported: infonce")
    conditional = args.get("conditional")
    if conditional not in FROM_CEBRA_CONDITIONAL:
        raise ValueError(f"this CEBRA model's conditional {conditional!r} is not supported; "
                         f"supported: {', '.join(str(c) for c in FROM_CEBRA_CONDITIONAL)}")
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
    time_offsets = args.get("time_offsets", 1)
    if isinstance(time_offsets, (list, tuple)):
        if len(time_offsets) != 1:
            raise ValueError(f"time_offsets={time_offsets!r}: CEBRA (and cebra_core) take one time offset")
        time_offsets = time_offsets[0]
    params = {
        "model_architecture": name,
        "batch_size": defaults["batch_size"] if args.get("batch_size") is None else int(args["batch_size"]),
        "learning_rate": float(args["learning_rate"]),
        "temperature": float(args.get("temperature", 1.0)),
        "temperature_mode": args.get("temperature_mode", "constant"),
        "min_temperature": args.get("min_temperature", 0.1),
        "output_dimension": int(args["output_dimension"]),
        "max_iterations": int(args.get("max_iterations", defaults["max_iterations"])),
        "max_adapt_iterations": int(args.get("max_adapt_iterations", defaults["max_adapt_iterations"])),
        "distance": args.get("distance", "cosine"),
        "conditional": FROM_CEBRA_CONDITIONAL[conditional],
        "time_offsets": int(time_offsets),
        "delta": args.get("delta"),
        "device": str(args.get("device", defaults["device"])),
        "verbose": bool(args.get("verbose", False)),
        "num_hidden_units": int(args["num_hidden_units"]),
    }
    model = cls(**params)
    num_sessions = state["num_sessions_"]
    multi = num_sessions is not None
    num_neurons = _sizes(state["n_features_in_"])
    if multi and len(num_neurons) != int(num_sessions):
        raise ValueError(f"this CEBRA file has num_sessions_={num_sessions} but n_features_in_={num_neurons}")
    if multi:
        prefixes = [f"{s}." for s in range(len(num_neurons))]
        state_dicts = [{k[len(p):]: v for k, v in weights["model"].items() if k.startswith(p)} for p in prefixes]
    else:
        state_dicts = [dict(weights["model"])]
    model.device_ = device
    model.seed_ = 0
    model.num_sessions_ = int(num_sessions) if multi else None
    model.label_kinds_ = _label_kinds(state.get("label_types_", []), multi)
    model._extra_state = {}
    model._set_weights(num_neurons, state_dicts, dict(weights.get("criterion", {})))
    log = weights.get("log") or {}
    loss = weights.get("loss")
    total = log.get("total") or ([] if loss is None else torch.as_tensor(loss).reshape(-1).tolist())
    columns = [log.get(c) or [float("nan")] * len(total) for c in ("pos", "neg")] + [total]
    columns.append(log.get("temperature") or [float("nan")] * len(total))
    if len({len(c) for c in columns}) != 1:
        columns = [[float("nan")] * len(total) if c is not total else c for c in columns]
    model._set_log(torch.tensor(columns, dtype=torch.float32).reshape(4, -1).T.contiguous())
    return model
