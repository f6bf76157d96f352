"""Judges: the frozen task models and formulas that score what a receiver produced.

``create_judge("NAME[=PATH]")`` builds a registered judge (``list_judges()`` names them),
``default_judges()`` the set the synthetic world is scored with, and
:func:`~semcom.judges.scoring.score` turns the receivers' answers into metrics.
"""

from __future__ import annotations

from semcom.judges import builtin as _builtin  # noqa: F401  (registers the built-in judges)
from semcom.judges import tflite as _tflite  # noqa: F401  (registers the TFLite judges)
from semcom.judges.base import (
    YIELDS,
    Judge,
    create_judge,
    list_judges,
    parse_judge_spec,
    register_judge,
)

__all__ = [
    "YIELDS",
    "Judge",
    "create_judge",
    "default_judges",
    "formula_judges",
    "list_judges",
    "parse_judge_spec",
    "register_judge",
]


def formula_judges() -> list[Judge]:
    """PSNR and SSIM: always on when the receiver reconstructs."""
    from semcom.judges.builtin import FORMULA_JUDGES

    return [create_judge(name) for name in FORMULA_JUDGES]


def default_judges(zoo: bool = True) -> list[Judge]:
    """:func:`formula_judges`, then (``zoo=True``) each of the zoo's judges whose weights
    are here: feature distance, classifier, fine-tuned classifier, segmenter."""
    from semcom.judges.builtin import ZOO_JUDGES
    from semcom.models.zoo import list_zoo

    judges = formula_judges()
    if zoo:
        here = set(list_zoo())
        needs = {"featdist": "shape-classifier"}
        judges += [create_judge(n) for n in ZOO_JUDGES if needs.get(n, n) in here]
    return judges
