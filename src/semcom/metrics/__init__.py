"""Metrics: rate (bpp), task quality (accuracy, mIoU, pixel accuracy), image fidelity (PSNR,
SSIM), perceptual distances (deep-feature distance; LPIPS when available) and BD-rate.

Importing this package never imports ``lpips`` or ``torchvision``.
"""

from semcom.metrics.bjontegaard import BDResult, bd_metric, bd_rate, bjontegaard
from semcom.metrics.classification import accuracy
from semcom.metrics.featdist import FeatureDistance
from semcom.metrics.lpips_metric import Availability, LPIPSMetric, lpips_available
from semcom.metrics.psnr import psnr
from semcom.metrics.rate import bits_per_pixel
from semcom.metrics.segmentation import (
    IGNORE_INDEX,
    IoU,
    SegmentationMeter,
    confusion_matrix,
    iou_from_confusion,
    miou,
    pixel_accuracy,
    pixel_accuracy_from_confusion,
)
from semcom.metrics.ssim import ssim, ssim_map

__all__ = [
    "IGNORE_INDEX",
    "Availability",
    "BDResult",
    "FeatureDistance",
    "IoU",
    "LPIPSMetric",
    "SegmentationMeter",
    "accuracy",
    "bd_metric",
    "bd_rate",
    "bits_per_pixel",
    "bjontegaard",
    "confusion_matrix",
    "iou_from_confusion",
    "lpips_available",
    "miou",
    "pixel_accuracy",
    "pixel_accuracy_from_confusion",
    "psnr",
    "ssim",
    "ssim_map",
]
