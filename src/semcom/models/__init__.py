"""Task models: a timm-style registry, checkpoints and the pretrained zoo.

```python
from semcom.models import create_model, list_models
clf = create_model("shape-classifier", pretrained=True)   # zoo weights, sha256-verified
seg = create_model("shape-segmenter", num_classes=6)       # random init
```
Every model file registers itself with ``@register_model(name)``; ``list_models()``
imports them all.
"""

from semcom.models.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from semcom.models.classifier import ShapeClassifier
from semcom.models.registry import create_model, is_model, list_models, register_model
from semcom.models.segmenter import ShapeSegmenter

__all__ = [
    "CheckpointMeta",
    "ShapeClassifier",
    "ShapeSegmenter",
    "create_model",
    "is_model",
    "list_models",
    "load_checkpoint",
    "register_model",
    "save_checkpoint",
]
