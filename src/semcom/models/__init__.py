"""Task models: a timm-style registry, checkpoints and the pretrained zoo.

```python
from semcom.models import create_model, list_models
clf = create_model("shape-classifier", pretrained=True)   # zoo weights, sha256-verified
seg = create_model("shape-segmenter", num_classes=6)       # random init
```
Every model file registers itself with ``@register_model(name)``; ``list_models()``
imports them all.
"""

import importlib
from typing import Any

# Exports are imported on first use (PEP 562), so that light modules such as
# ``semcom.models.zoo`` can be used without importing torch.
_EXPORTS = {
    "CheckpointMeta": "semcom.models.checkpoint",
    "load_checkpoint": "semcom.models.checkpoint",
    "save_checkpoint": "semcom.models.checkpoint",
    "ShapeClassifier": "semcom.models.classifier",
    "ShapeSegmenter": "semcom.models.segmenter",
    "create_model": "semcom.models.factory",
    "is_model": "semcom.models.registry",
    "list_models": "semcom.models.registry",
    "register_model": "semcom.models.registry",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'semcom.models' has no attribute {name!r}")


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
