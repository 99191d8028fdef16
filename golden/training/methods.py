"""The quantization methods, the weight widths each produces, and the accuracy sweep's default grid
(torch-free, so the CLI can check its options without loading torch)."""

from __future__ import annotations

from qlif.golden.spec.model import WEIGHT_BITS

__all__ = ["METHODS", "QAT_METHODS", "QAT_WEIGHT_BITS", "GRID_WEIGHT_BITS", "GRID_MEMBRANE_BITS"]

#: Every quantization method and the weight bits it can produce. ``ptq`` is post-training
#: (:func:`qlif.golden.training.quantize.quantize`): any width of the model file; the others are
#: quantization-aware training (:mod:`qlif.golden.training.qat`).
METHODS = {"ptq": WEIGHT_BITS, "lsq": (2, 4, 8), "binary": (1,), "ternary": (2,)}
#: Methods of quantization-aware training (``qlif train --qat``).
QAT_METHODS = tuple(m for m in METHODS if m != "ptq")
#: Weight bits each quantization-aware method can produce.
QAT_WEIGHT_BITS = {m: METHODS[m] for m in QAT_METHODS}
#: The accuracy sweep's default grid (``qlif sweep-accuracy``): every legal weight width, and four
#: membrane widths spanning the legal ones.
GRID_WEIGHT_BITS = WEIGHT_BITS
GRID_MEMBRANE_BITS = (2, 4, 8, 16)
