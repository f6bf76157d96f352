"""Training recipes: one object per kind of run -- its data, model, loss and evaluation.

Every recipe runs on the one loop, :func:`semcom.train.loop.fit`; the contract is
:class:`~semcom.train.recipes.base.Recipe`. Two families, one file per recipe:

* task models (:mod:`.task`): a registered model trained from scratch on the task it
  declares -- :class:`ClassifierRecipe` (``classify``), :class:`SegmenterRecipe`
  (``segment``); :func:`task_recipe` picks one;
* patch transmission (:mod:`.patch`): :class:`VitRecipe` (``vit-synth``),
  :class:`ServerRecipe` (``server-synth``, the collaborative server on patch subsets),
  :class:`DistillRecipe` (``vit-distill``, from a teacher judge),
  :class:`PatchDecoderRecipe` (``patch-decoder-synth``), :class:`FinetuneRecipe`
  (``shape-classifier-ft``), by name in :data:`PATCH_MODELS`; with them, on the same
  settings, :class:`VQVAERecipe` (``vqvae-synth``, :mod:`.vqvae`: a VQ-VAE image codec) and
  :class:`GosVaeRecipe` (``gos-vae-synth``, :mod:`.gos_vae`: one trained to imitate a
  frozen segmenter) and :class:`BalleRecipe` (``balle-synth``, :mod:`.balle`: Ballé et
  al.'s factorized-prior / hyperprior codecs, for rate and MSE or GOS-VAE's task loss) and
  :class:`TextDiffusionRecipe` (``text-diffusion-synth``, :mod:`.text_diffusion`: the
  progressive text scheme's generator, on the world's captions) and
  :class:`CaptionerRecipe` (``captioner-synth``, :mod:`.captioner`: its captioner).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from semcom.errors import InputError
from semcom.models.registry import model_entrypoint
from semcom.train.recipes.balle import BalleRecipe
from semcom.train.recipes.base import Batch, Recipe
from semcom.train.recipes.captioner import CaptionerRecipe
from semcom.train.recipes.classifier import ClassifierRecipe
from semcom.train.recipes.distill import DistillRecipe
from semcom.train.recipes.finetune import FinetuneRecipe
from semcom.train.recipes.gos_vae import GosVaeRecipe
from semcom.train.recipes.patch import PatchRecipe
from semcom.train.recipes.patch_decoder import PatchDecoderRecipe
from semcom.train.recipes.segmenter import SegmenterRecipe
from semcom.train.recipes.server import ServerRecipe
from semcom.train.recipes.task import TaskRecipe
from semcom.train.recipes.text_diffusion import TextDiffusionRecipe
from semcom.train.recipes.vit import VitRecipe
from semcom.train.recipes.vqvae import VQVAERecipe

__all__ = [
    "PATCH_MODELS",
    "TASK_RECIPES",
    "BalleRecipe",
    "Batch",
    "CaptionerRecipe",
    "ClassifierRecipe",
    "DistillRecipe",
    "FinetuneRecipe",
    "GosVaeRecipe",
    "PatchDecoderRecipe",
    "PatchRecipe",
    "Recipe",
    "SegmenterRecipe",
    "ServerRecipe",
    "TaskRecipe",
    "TextDiffusionRecipe",
    "VQVAERecipe",
    "VitRecipe",
    "evaluate_patch_model",
    "patch_recipe",
    "task_recipe",
    "zoo_recipe",
]

#: the patch-transmission recipes by name (``--model``)
PATCH_MODELS: dict[str, type[PatchRecipe]] = {
    r.name: r
    for r in (
        VitRecipe,
        ServerRecipe,
        DistillRecipe,
        PatchDecoderRecipe,
        FinetuneRecipe,
        VQVAERecipe,
        GosVaeRecipe,
        BalleRecipe,
        TextDiffusionRecipe,
        CaptionerRecipe,
    )
}
#: the task-model recipes by the task a model declares
TASK_RECIPES: dict[str, type[TaskRecipe]] = {r.task: r for r in (ClassifierRecipe, SegmenterRecipe)}


def patch_recipe(name: str) -> type[PatchRecipe]:
    """The patch-transmission recipe ``name`` (``InputError`` naming the others if none)."""
    if name not in PATCH_MODELS:
        raise InputError(f"unknown patch recipe {name!r}; expected one of {sorted(PATCH_MODELS)}")
    return PATCH_MODELS[name]


def task_recipe(name: str) -> type[TaskRecipe]:
    """The recipe that trains registered model ``name``: by the task its registry entry
    declares (``ShapeClassifier.task``); :class:`TaskRecipe` itself (whose ``build``
    refuses the model) for one without a trainable task or an unknown name."""
    try:
        declared = getattr(model_entrypoint(name), "task", None)
    except InputError:  # unknown: TaskRecipe.build reports it (as create_model does)
        declared = None
    return TASK_RECIPES.get(declared, TaskRecipe)


def zoo_recipe(name: str, model: nn.Module) -> type[Recipe]:
    """The recipe whose :meth:`~Recipe.score` scores zoo entry ``name`` holding ``model``:
    the patch recipe of that name, else the task recipe of ``model.task``."""
    if name in PATCH_MODELS:
        return PATCH_MODELS[name]
    task = getattr(model, "task", None)
    if task not in TASK_RECIPES:
        raise InputError(f"no recipe scores {name!r} (model.task = {task!r})")
    return TASK_RECIPES[task]


def evaluate_patch_model(
    name: str,
    model: nn.Module,
    *,
    vit: Any = "vit-synth",
    decoder: Any = "patch-decoder-synth",
    baseline: Any = "shape-classifier",
    **images: Any,
) -> dict[str, Any]:
    """The metrics recorded in the zoo for recipe ``name`` (all on the same images):
    ``patch_recipe(name).score`` (see each recipe's module for its figures).

    ``vit`` / ``decoder`` / ``baseline``: zoo names, checkpoint paths or modules (only
    those the recipe depends on are loaded). ``images``: ``split`` (``"val"``), ``n``
    (512), ``batch_size`` (64), ``image_size`` (64), ``data`` (``None``: the world).
    """
    recipe = patch_recipe(name)
    given = {"vit": vit, "decoder": decoder, "baseline": baseline}
    return recipe.score(model, **images, **{role: given[role] for role in recipe.depends})
