"""Data: the synthetic world, torch datasets over it, and real-data loaders.

Tensor conventions (see docs/architecture.md): images are uint8 ``(N, 3, H, W)`` (or
float32 in ``[0, 1]`` for models; convert with :func:`to_float` / :func:`to_uint8`),
labels int64 ``(N,)``, masks int64 ``(N, H, W)`` with :data:`IGNORE_INDEX` ignored.
"""

from semcom.data.captions import CocoCaptionsDataset, Flickr8kDataset, collate_captions
from semcom.data.convert import IGNORE_INDEX, to_float, to_uint8
from semcom.data.datasets import SyntheticDataset, iter_batches
from semcom.data.factory import DATASET_NAMES, load_dataset
from semcom.data.folders import (
    CAMVID_CLASSES,
    CamVidDataset,
    ImageFolderDataset,
    TinyImageNetDataset,
)
from semcom.data.images import read_image, read_label
from semcom.data.synthetic import (
    CLASS_NAMES,
    COLOR_NAMES,
    NUM_CLASSES,
    SPLITS,
    TEXTURE_NAMES,
    SyntheticBatch,
    SyntheticWorld,
    split_seeds,
)

__all__ = [
    "CAMVID_CLASSES",
    "CLASS_NAMES",
    "COLOR_NAMES",
    "DATASET_NAMES",
    "IGNORE_INDEX",
    "NUM_CLASSES",
    "SPLITS",
    "TEXTURE_NAMES",
    "CamVidDataset",
    "CocoCaptionsDataset",
    "Flickr8kDataset",
    "ImageFolderDataset",
    "SyntheticBatch",
    "SyntheticDataset",
    "SyntheticWorld",
    "TinyImageNetDataset",
    "collate_captions",
    "iter_batches",
    "load_dataset",
    "read_image",
    "read_label",
    "split_seeds",
    "to_float",
    "to_uint8",
]
