"""Throughput of each judge on CPU: images per second at 64x64 and 224x224 (median of
several runs of one batch).

Usage::

    python benchmarks/bench_judges.py [--lpips-dir DIR] [--models-dir DIR] [--sizes 64,224]
                                      [--batch 16] [--repeats 5] [--threads 2]

``--lpips-dir`` is the folder of the LPIPS safetensors weights (``lpips-alex`` /
``lpips-vgg`` judges); without it LPIPS runs with random weights of the same shapes
(the same arithmetic, so the same speed). ``--models-dir`` is the folder of the
pretrained TFLite files (``mobilenet_v2_1.0_224_quant.tflite``,
``deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite`` and their label lists): it adds
the ``tflite-classifier`` / ``tflite-segmenter`` judges and the torch MobileNetV2 port
(imported from the TFLite file, resizing to 224 like the TFLite judge). Every judge resizes
images to its own input size first (64 for the zoo's, 224 / 513 for the TFLite ones), so
its speed hardly depends on the image size.
"""

from __future__ import annotations

import argparse

import torch
from _timing import print_head, timed

from semcom.judges import create_judge
from semcom.judges.base import Judge


def pretrained(models_dir: str) -> list[Judge]:
    """The TFLite judges and the torch MobileNetV2 port of the same file."""
    from pathlib import Path

    from semcom.judges.builtin import ClassifierJudge
    from semcom.models.mobilenet_v2 import MobileNetV2
    from semcom.models.tflite_import import mobilenet_v2_from_tflite

    d = Path(models_dir)
    mnv2 = d / "mobilenet_v2_1.0_224_quant.tflite"
    seg = d / "deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite"
    port = mobilenet_v2_from_tflite(mnv2)
    resized = MobileNetV2(**{**port.config, "input_size": 224})
    resized.load_state_dict(port.state_dict())
    return [
        create_judge(f"tflite-classifier={mnv2}"),
        ClassifierJudge(resized, "mobilenet-v2 (torch port)", ("accuracy",)),
        create_judge(f"tflite-segmenter={seg}"),
    ]


def judges(lpips_dir: str | None) -> list[Judge]:
    out = [
        create_judge(n) for n in ("psnr", "ssim", "featdist", "shape-classifier", "shape-segmenter")
    ]
    for net in ("alex", "vgg"):
        if lpips_dir:
            out.append(create_judge(f"lpips-{net}={lpips_dir}"))
        else:
            from semcom.judges.builtin import LpipsJudge
            from semcom.metrics.lpips_net import LPIPS

            j = LpipsJudge.__new__(LpipsJudge)
            j.lpips = LPIPS(net)
            Judge.__init__(j, f"lpips-{net} (random weights)", (f"lpips-{net}",))
            out.append(j)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--lpips-dir", default=None, help="folder of the LPIPS weights (default: random weights)"
    )
    p.add_argument(
        "--models-dir", default=None, help="folder of the pretrained TFLite files (optional)"
    )
    p.add_argument(
        "--sizes", default="64,224", help="image sides, comma-separated (default 64,224)"
    )
    p.add_argument("--batch", type=int, default=16, help="images per call (default 16)")
    p.add_argument(
        "--repeats", type=int, default=5, help="runs per figure; the median is shown (default 5)"
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    sizes = [int(s) for s in a.sizes.split(",")]
    print_head(f"{'judge':36s}" + "".join(f"{f'{s}x{s} img/s':>16s}" for s in sizes))
    for j in judges(a.lpips_dir) + (pretrained(a.models_dir) if a.models_dir else []):
        row = f"{j.name:36s}"
        for s in sizes:
            x, y = torch.rand(a.batch, 3, s, s), torch.rand(a.batch, 3, s, s)
            with torch.no_grad():
                j(x, y)  # warm-up
                _, sec = timed(lambda j=j, x=x, y=y: j(x, y), a.repeats)
            row += f"{a.batch / sec:16.1f}"
        print(row)


if __name__ == "__main__":
    main()
