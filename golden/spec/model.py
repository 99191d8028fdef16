"""The qlif model file: a chain of fully connected integer LIF layers.

The format is specified in ``docs/model-format.md`` and the semantics in ``docs/semantics.md``.
Every way a model can be wrong is reported as a :class:`ModelError` that names the field and why,
so that the CLI can print one line and exit 2 without a traceback.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "FORMAT", "VERSION", "WEIGHT_BITS", "MEMBRANE_BITS", "RESETS",
    "ModelError", "Layer", "Model", "default_codebook", "leak_beta", "load_model", "save_model",
]

FORMAT = "qlif-model"
VERSION = 1
WEIGHT_BITS = (1, 2, 4, 8)
MEMBRANE_BITS = range(2, 17)
LEAK_SHIFTS = range(0, 16)
RESETS = ("subtract", "zero")
MAX_TIMESTEPS = 1 << 16


class ModelError(ValueError):
    """A model file or model object that breaks the format; the message names the field and why."""

    def __init__(self, where: str, why: str):
        self.where = where
        self.why = why
        super().__init__(f"{where}: {why}")


def default_codebook(weight_bits: int) -> list[int]:
    """Code ``c`` -> weight value when a layer has no codebook.

    Two's complement ``[-2^(b-1), 2^(b-1)-1]`` (code ``c`` is the b-bit two's complement pattern of its
    value), except for ``b = 1`` where code 0 is -1 and code 1 is +1.
    """
    if weight_bits == 1:
        return [-1, 1]
    half = 1 << (weight_bits - 1)
    return [c if c < half else c - (1 << weight_bits) for c in range(1 << weight_bits)]


def leak_beta(leak_shift: int | None) -> float:
    """The real decay per step of the leak ``v - (v >> leak_shift)``: ``1 - 2^-leak_shift`` (1: no leak).

    The one home of this formula: the float network's beta, the NIR mapping and its messages use it.
    """
    return 1.0 if leak_shift is None else 1.0 - 2.0 ** -leak_shift


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


@dataclass(frozen=True)
class Layer:
    """One fully connected LIF layer. ``weights[j][i]`` connects input ``j`` to neuron ``i``."""

    weights: np.ndarray                  # int64 [n_in, n_out]
    weight_bits: int
    membrane_bits: int
    threshold: int
    leak_shift: int | None
    reset: str
    codebook: tuple[int, ...] | None = None

    @property
    def n_in(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.weights.shape[1])

    @property
    def effective_codebook(self) -> tuple[int, ...]:
        """The codebook in force: the layer's own, or :func:`default_codebook`."""
        if self.codebook is not None:
            return self.codebook
        return tuple(default_codebook(self.weight_bits))

    @property
    def v_min(self) -> int:
        return -(1 << (self.membrane_bits - 1))

    @property
    def v_max(self) -> int:
        return (1 << (self.membrane_bits - 1)) - 1

    def codes(self) -> np.ndarray:
        """Weights as codebook indices (uint8 [n_in, n_out]); the lowest code wins if values repeat."""
        book = np.asarray(self.effective_codebook, dtype=np.int64)
        # Search the first matching code for every weight: argmax of equality finds the lowest index.
        eq = self.weights[..., None] == book
        return eq.argmax(axis=-1).astype(np.uint8)

    def validate(self, where: str) -> None:
        """Check every rule of the format; raise :class:`ModelError` naming ``where`` and the field."""
        w = self.weights
        if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] < 1:
            raise ModelError(f"{where}.weights", f"must be a non-empty 2-D list, not shape {w.shape}")
        if self.weight_bits not in WEIGHT_BITS:
            raise ModelError(f"{where}.weight_bits",
                             f"must be one of {WEIGHT_BITS}, not {self.weight_bits!r}")
        if self.membrane_bits not in MEMBRANE_BITS:
            raise ModelError(f"{where}.membrane_bits", f"must be 2..16, not {self.membrane_bits!r}")
        top = (1 << (self.membrane_bits - 1)) - 1
        if not _is_int(self.threshold) or not 0 <= self.threshold < top:
            raise ModelError(
                f"{where}.threshold",
                f"must be an integer with 0 <= threshold < 2^(membrane_bits-1)-1 = {top}, "
                f"not {self.threshold!r}")
        lam = self.leak_shift
        if lam is not None and (not _is_int(lam) or lam not in LEAK_SHIFTS):
            raise ModelError(f"{where}.leak_shift", f"must be null or 0..15, not {self.leak_shift!r}")
        if self.reset not in RESETS:
            raise ModelError(f"{where}.reset", f"must be one of {RESETS}, not {self.reset!r}")
        if self.codebook is not None:
            if len(self.codebook) != 1 << self.weight_bits:
                raise ModelError(
                    f"{where}.codebook",
                    f"must have 2^weight_bits = {1 << self.weight_bits} entries, not {len(self.codebook)}")
            if not all(_is_int(c) for c in self.codebook):
                raise ModelError(f"{where}.codebook", "entries must be integers")
            if any(abs(int(c)) > 1 << 15 for c in self.codebook):
                raise ModelError(f"{where}.codebook", "entries must lie in -32768..32768")
        book = np.asarray(self.effective_codebook, dtype=np.int64)
        bad = ~np.isin(w, book)
        if bad.any():
            j, i = (int(a) for a in np.argwhere(bad)[0])
            raise ModelError(
                f"{where}.weights[{j}][{i}]",
                f"value {int(w[j, i])} is not in the {self.weight_bits}-bit codebook {list(book)}")


@dataclass(frozen=True)
class Model:
    """A chain of :class:`Layer` run for ``timesteps`` steps; layer ``l``'s n_in is layer ``l-1``'s n_out."""

    timesteps: int
    layers: tuple[Layer, ...]
    metadata: dict = field(default_factory=dict, compare=False)

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    def validate(self) -> None:
        if not _is_int(self.timesteps) or not 1 <= self.timesteps <= MAX_TIMESTEPS:
            raise ModelError("timesteps", f"must be an integer 1..{MAX_TIMESTEPS}, not {self.timesteps!r}")
        if not self.layers:
            raise ModelError("layers", "must hold at least one layer")
        for l, layer in enumerate(self.layers):
            layer.validate(f"layers[{l}]")
            if l and layer.n_in != self.layers[l - 1].n_out:
                raise ModelError(
                    f"layers[{l}].weights",
                    f"has {layer.n_in} rows (inputs) but layers[{l - 1}] has "
                    f"{self.layers[l - 1].n_out} neurons")

    # -- serialisation -------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "timesteps": int(self.timesteps),
            "layers": [{
                "weights": layer.weights.tolist(),
                "weight_bits": layer.weight_bits,
                "membrane_bits": layer.membrane_bits,
                "threshold": int(layer.threshold),
                "leak_shift": layer.leak_shift,
                "reset": layer.reset,
                "codebook": None if layer.codebook is None else [int(c) for c in layer.codebook],
            } for layer in self.layers],
            **({"metadata": self.metadata} if self.metadata else {}),
        }

    @classmethod
    def from_json(cls, doc) -> Model:
        """Build and validate a model from parsed JSON; every problem is a :class:`ModelError`."""
        if not isinstance(doc, dict):
            raise ModelError("(top level)", "must be a JSON object")
        if doc.get("format") != FORMAT:
            raise ModelError("format", f"must be {FORMAT!r}, not {doc.get('format')!r}")
        if doc.get("version") != VERSION:
            raise ModelError("version", f"must be {VERSION}, not {doc.get('version')!r}")
        for key in ("timesteps", "layers"):
            if key not in doc:
                raise ModelError(key, "is missing")
        if not isinstance(doc["layers"], list):
            raise ModelError("layers", "must be a list")
        layers = []
        for l, ld in enumerate(doc["layers"]):
            where = f"layers[{l}]"
            if not isinstance(ld, dict):
                raise ModelError(where, "must be an object")
            for key in ("weights", "weight_bits", "membrane_bits", "threshold", "reset"):
                if key not in ld:
                    raise ModelError(f"{where}.{key}", "is missing")
            rows = ld["weights"]
            if (not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows)
                    or len({len(r) for r in rows}) != 1):
                raise ModelError(f"{where}.weights", "must be a non-empty list of equally long rows")
            if not all(_is_int(x) for r in rows for x in r):
                raise ModelError(f"{where}.weights", "entries must be integers")
            for key in ("weight_bits", "membrane_bits"):
                if not _is_int(ld[key]):
                    raise ModelError(f"{where}.{key}", f"must be an integer, not {ld[key]!r}")
            book = ld.get("codebook")
            if book is not None and not isinstance(book, list):
                raise ModelError(f"{where}.codebook", "must be null or a list of integers")
            layers.append(Layer(
                weights=np.asarray(rows, dtype=np.int64),
                weight_bits=int(ld["weight_bits"]),
                membrane_bits=int(ld["membrane_bits"]),
                threshold=ld["threshold"],
                leak_shift=ld.get("leak_shift"),
                reset=ld["reset"],
                codebook=None if book is None else tuple(book),
            ))
        meta = doc.get("metadata", {})
        model = cls(timesteps=doc["timesteps"], layers=tuple(layers),
                    metadata=meta if isinstance(meta, dict) else {})
        model.validate()
        return model


def load_model(path: str | os.PathLike) -> Model:
    """Read and validate a model file; raise :class:`ModelError` for anything wrong with it."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise ModelError(str(path), f"cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:     # a binary file (a checkpoint, a NIR graph) given as the model
        raise ModelError(str(path), f"is not a JSON model file (not UTF-8 text: byte {e.start} is "
                                    f"0x{e.object[e.start]:02x})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelError(str(path),
                         f"is not valid JSON (line {e.lineno} column {e.colno}: {e.msg})") from None
    return Model.from_json(doc)


def save_model(model: Model, path: str | os.PathLike) -> None:
    """Validate, then write atomically (a temporary file renamed into place: nothing half-written)."""
    model.validate()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(model.to_json(), separators=(",", ":")) + "\n")
    os.replace(tmp, path)
