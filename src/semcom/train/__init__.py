"""Training: one loop (resumable, seeded, DDP-capable) and a recipe per kind of model.

```python
from semcom.train import train_task_model
res = train_task_model("shape-classifier", "runs/clf", steps=1500, batch_size=64, seed=0)
res.metrics   # {"split": "val", "n": 512, "accuracy": ...}
```
``train_patch_model("vit-synth", ...)`` trains the patch-transmission recipes
(:mod:`semcom.train.recipes`); both run :func:`semcom.train.loop.fit`. ``main(argv)``
is the ``python -m semcom.train`` entry point; :mod:`semcom.train.publish` puts a
trained model into the zoo.
"""

from semcom.train.cli import main
from semcom.train.evaluate import evaluate
from semcom.train.loop import (
    TrainResult,
    fit,
    train_classifier,
    train_patch_model,
    train_segmenter,
    train_task_model,
)
from semcom.train.sources import DatasetSource, SyntheticSource, collate_items

__all__ = [
    "DatasetSource",
    "SyntheticSource",
    "TrainResult",
    "collate_items",
    "evaluate",
    "fit",
    "main",
    "train_classifier",
    "train_patch_model",
    "train_segmenter",
    "train_task_model",
]
