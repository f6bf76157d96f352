"""Patch-level transmission helpers: the patch grid and patch-selection rules."""

from semcom.patches.grid import patchify, unpatchify
from semcom.patches.selection import (
    RULES,
    AttentionMass,
    AttentionSumThreshold,
    AttentionThreshold,
    RandomK,
    Rate,
    SelectionRule,
    TopK,
    create_rule,
    mask_to_indices,
    mask_to_keep,
)

__all__ = [
    "RULES",
    "AttentionMass",
    "AttentionSumThreshold",
    "AttentionThreshold",
    "RandomK",
    "Rate",
    "SelectionRule",
    "TopK",
    "create_rule",
    "mask_to_indices",
    "mask_to_keep",
    "patchify",
    "unpatchify",
]
