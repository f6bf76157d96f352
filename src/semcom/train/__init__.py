"""Training loops for the task models (resumable, seeded, DDP-capable).

```python
from semcom.train import train_task_model
res = train_task_model("shape-classifier", "runs/clf", steps=1500, batch_size=64, seed=0)
res.metrics   # {"split": "val", "n": 512, "accuracy": ...}
```
``main(argv)`` is the ``python -m semcom.train`` entry point.
"""

from semcom.train.cli import main
from semcom.train.evaluate import evaluate
from semcom.train.loop import TrainResult, train_classifier, train_segmenter, train_task_model
from semcom.train.sources import DatasetSource, SyntheticSource, collate_items

__all__ = [
    "DatasetSource",
    "SyntheticSource",
    "TrainResult",
    "collate_items",
    "evaluate",
    "main",
    "train_classifier",
    "train_segmenter",
    "train_task_model",
]
