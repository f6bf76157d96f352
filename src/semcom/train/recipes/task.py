"""The task-model family: a registered model trained from scratch on its own task.

``train_task_model(name, ...)`` trains registry model ``name`` with the recipe of the
task it declares (``ShapeClassifier.task == "classify"``): :class:`ClassifierRecipe
<semcom.train.recipes.classifier.ClassifierRecipe>` or :class:`SegmenterRecipe
<semcom.train.recipes.segmenter.SegmenterRecipe>`. A model without a trainable task gets
this base class, whose :meth:`TaskRecipe.build` says so.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from semcom.errors import InputError
from semcom.models.registry import create_model
from semcom.train.evaluate import evaluate
from semcom.train.recipes.base import Recipe

__all__ = ["TaskRecipe"]


class TaskRecipe(Recipe):
    """Registered model ``name`` on the synthetic world or on a labelled dataset.

    Args:
        label_smoothing: cross-entropy label smoothing (classifiers).
        aux_weight: weight of a classifier's dense mask loss (recorded for every task).
        augment: random flips and shifts of a classifier's dataset images.
        name / kw: ``data``, ``eval_data``, ``model_kw``, ``image_size``: see
            :class:`~semcom.train.recipes.base.Recipe`.
    """

    def __init__(
        self,
        name: str,
        *,
        label_smoothing: float = 0.0,
        aux_weight: float = 1.0,
        augment: bool = True,
        **kw: Any,
    ) -> None:
        super().__init__(name, **kw)
        self.label_smoothing = label_smoothing
        self.aux_weight = aux_weight
        self.augment = augment

    @property
    def augments(self) -> bool:
        """Whether training images are augmented (only a classifier's dataset images)."""
        return False

    def build(self) -> nn.Module:
        model = create_model(self.name, **self.model_kw)
        task = getattr(model, "task", None)
        if self.task is None or task != self.task:
            raise InputError(f"model {self.name!r} has no trainable task (model.task = {task!r})")
        return model

    def run_args(self, model: nn.Module, run: dict[str, Any]) -> dict[str, Any]:
        return {
            "model": self.name,
            "model_kw": model.config,
            "batch_size": run["batch_size"],
            "lr": run["lr"],
            "weight_decay": run["weight_decay"],
            "seed": run["seed"],
            "image_size": self.image_size,
            "schedule": run["schedule"],
            "warmup": run["warmup"],
            "label_smoothing": self.label_smoothing,
            "grad_clip": run["grad_clip"],
            "aux_weight": self.aux_weight,
            "data": "synthetic" if self.data is None else type(self.data).__name__,
            "augment": self.augments,
        }

    @classmethod
    def score(cls, model: nn.Module, **kw: Any) -> dict[str, Any]:
        """:func:`semcom.train.evaluate.evaluate` (a task model depends on no other)."""
        return evaluate(model, **kw)
