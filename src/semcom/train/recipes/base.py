"""The recipe contract: what one training run trains, as the one loop sees it.

A :class:`Recipe` owns the *what* -- its data, the model it builds, a step's loss and
the evaluation of the result -- and :func:`semcom.train.loop.fit` the *how*: argument
checks, seeding, optimiser and schedule, resume files, DDP, progress, the final
checkpoint and ``metrics.json``. The loop calls, in this order::

    recipe.check()                      # the recipe's own arguments
    recipe.prepare()                    # read datasets
    model = recipe.build()              # after torch.manual_seed(seed)
    recipe.run_args(model, run)         # the settings a resumed run must share
    recipe.source(seed)                 # the training batches
    recipe.unused_parameters(model)     # DDP's find_unused_parameters
    recipe.loss(net, model, batch)      # every step
    recipe.finish(model, run)           # after the last step (every rank)
    recipe.evaluate(model, split=..., n=...)   # at the end (rank 0)

and the zoo scores a published model with the class method :meth:`Recipe.score`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from semcom.train.sources import DatasetSource, SyntheticSource

__all__ = ["Batch", "Recipe", "mask_at"]


@dataclass(frozen=True)
class Batch:
    """One optimizer step's data as this rank sees it.

    ``x`` float32 ``(b, 3, H, W)``; ``y`` int64 targets, labels ``(b,)`` or masks
    ``(b, H, W)``; ``masks`` the synthetic world's object masks int64 ``(b, H, W)``
    (``None`` for datasets); ``rows`` int64 ``(b,)``: which rows of the ``total``-image
    global batch these are; ``seed``: the step's seed, the same on every rank (torch's
    global RNG is seeded with ``seed + rank`` before the step).
    """

    step: int
    x: Tensor
    y: Tensor
    masks: Tensor | None
    rows: Tensor
    total: int
    seed: int


def mask_at(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """Masks int64 ``(N, H, W)`` sampled at the centres of a ``size`` grid of cells."""
    h, w = masks.shape[-2:]
    rows = ((torch.arange(size[0]) + 0.5) * h / size[0]).long().clamp_(max=h - 1)
    cols = ((torch.arange(size[1]) + 0.5) * w / size[1]).long().clamp_(max=w - 1)
    return masks[:, rows][:, :, cols]


class Recipe:
    """Data, model, loss and evaluation of one kind of training run.

    Args:
        name: the run's name: what ``--model`` takes, the progress label and the final
            checkpoint ``<name>.safetensors``.
        data / eval_data: map-style datasets of ``(image, target)`` items for training /
            the final evaluation; ``None``: the synthetic world (generated on the fly).
        model_kw: config passed to the model's constructor.
        image_size: the synthetic world's image side (a multiple of 8).
    """

    #: the zoo's ``task`` of what this recipe trains
    task: ClassVar[str | None] = None
    #: what the synthetic source yields as ``Batch.y``: ``"classify"`` labels or
    #: ``"segment"`` masks
    targets: ClassVar[str] = "classify"
    #: the headline metric of :meth:`score` (its tolerance is the others' default)
    metric: ClassVar[str] = "accuracy"
    #: the :meth:`score` figures the zoo records (``None``: all of them)
    zoo_metrics: ClassVar[tuple[str, ...] | None] = None
    #: the frozen zoo models :meth:`score` uses, by role (``{"vit": "vit-synth"}``)
    depends: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        name: str,
        *,
        data: Any = None,
        eval_data: Any = None,
        model_kw: dict[str, Any] | None = None,
        image_size: int = 64,
    ) -> None:
        self.name = name
        self.data = data
        self.eval_data = eval_data
        self.model_kw = dict(model_kw or {})
        self.image_size = image_size

    # ------------------------------------------------------------------ setup
    def check(self) -> None:
        """Refuse bad recipe arguments (``InputError``); called before anything runs."""

    def prepare(self) -> None:
        """Read what the run needs before the model is built (e.g. datasets)."""

    def build(self) -> nn.Module:
        """The model to train (called right after ``torch.manual_seed(seed)``)."""
        raise NotImplementedError

    def run_args(self, model: nn.Module, run: dict[str, Any]) -> dict[str, Any]:
        """The settings recorded in ``metrics.json`` and compared on resume.

        ``run`` holds the loop's: ``batch_size``, ``lr``, ``weight_decay``, ``seed``,
        ``schedule``, ``warmup``, ``grad_clip``.
        """
        raise NotImplementedError

    def source(self, seed: int) -> Any:
        """The training batches: the synthetic world's train split, or ``data``."""
        if self.data is None:
            return SyntheticSource(self.targets, seed=seed, image_size=self.image_size)
        return DatasetSource(self.data, seed=seed)

    def unused_parameters(self, model: nn.Module) -> bool:
        """Whether some of ``model``'s parameters get no gradient (DDP must be told)."""
        return False

    # ------------------------------------------------------------------- steps
    def loss(self, net: nn.Module, model: nn.Module, batch: Batch) -> Tensor:
        """The loss of one step: ``net`` is ``model`` or its DDP wrapper (call it for the
        forward pass); ``model`` is the module itself (for its attributes)."""
        raise NotImplementedError

    def after_step(self, model: nn.Module, step: int) -> None:
        """After each optimiser step (``step``: the steps done): what a recipe tracks of
        the weights (e.g. their exponential moving average). Default: nothing."""

    def finish(self, model: nn.Module, run: dict[str, Any]) -> None:
        """Once the last step is done, before the final checkpoint and evaluation: what a
        recipe computes from the trained model and stores in it (a VQ-VAE's entropy-coding
        prior, fitted on training-set indices). ``run``: as in :meth:`run_args`. Called on
        every rank, only when the run reaches ``steps`` (not after ``stop_after``)."""

    # -------------------------------------------------------------- evaluation
    def frozen(self) -> dict[str, Any]:
        """The frozen models of :attr:`depends` as this run has them (default: the zoo's)."""
        return {}

    def evaluate(self, model: nn.Module, *, split: str, n: int | None) -> dict[str, Any]:
        """The final evaluation: :meth:`score` on ``eval_data`` or the world's ``split``."""
        return self.score(
            model, split=split, n=n, image_size=self.image_size, data=self.eval_data,
            **self.frozen(),
        )  # fmt: skip

    @classmethod
    def score(cls, model: nn.Module, **kw: Any) -> dict[str, Any]:
        """The metrics of a model this recipe trains: ``{"split", "n", <metric>: ...}``.

        ``kw``: the images -- ``split``, ``n``, ``batch_size``, ``image_size``, ``data`` as
        for :func:`semcom.train.evaluate.evaluate` (``n`` images of the synthetic
        ``split``, or of dataset ``data``) -- and, by role, the frozen models of
        :attr:`depends` (zoo names, checkpoint paths or modules; default the zoo's).
        """
        raise NotImplementedError
