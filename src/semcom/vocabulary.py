"""Words shared by the schemes (which declare them) and the result records (which carry
them), kept here so that reading results never imports the schemes (or torch)."""

from __future__ import annotations

#: What a scheme is in a comparison: ``baseline`` (what the proposed schemes are measured
#: against: classical codecs, ...), ``proposed`` (the systems under study) or
#: ``reference`` (an end point such as raw pixels: plotted, never compared).
ROLES: tuple[str, ...] = ("baseline", "proposed", "reference")

#: What a receiver may produce: a reconstruction ``x_hat``, its own class scores
#: ``logits``, per-pixel class scores ``segmentation``, or ``text``.
OUTPUTS: tuple[str, ...] = ("x_hat", "logits", "segmentation", "text")
