"""The torch MobileNetV2 port against the TFLite interpreter on Tiny-ImageNet val.

For the first ``--n`` images ``val/images/val_0.JPEG, val_1.JPEG, ...`` (labels from
``val/val_annotations.txt``), each image is read exactly as the models README's V1 does
(``PIL.Image.open(f).convert("RGB").resize((224, 224), Image.BILINEAR)``, uint8) and fed

* to the TFLite interpreter (``ai_edge_litert``) as raw uint8 pixels ``[1, 224, 224, 3]``,
* to the torch port (:func:`semcom.models.tflite_import.mobilenet_v2_from_tflite`) as the
  same pixels ``/ 255``, float ``(B, 3, 224, 224)`` (channels-last memory, model too).

Both are restricted to the 200 Tiny-ImageNet classes (MobileNetV2 output
``synsets.index(wnid) + 1``, in ``wnids.txt`` order). Printed: top-1 / top-5 of TFLite
ranked by its uint8 softmax output (ties broken in ``wnids.txt`` order, i.e. a stable
sort: the README's figure) and by its pre-softmax uint8 logits (tensor
``MobilenetV2/Logits/Squeeze1``, read from a second interpreter built with
``experimental_preserve_all_tensors``, not timed); top-1 / top-5 of the torch port; how
often the torch argmax equals each TFLite argmax (over the 200 classes and over all
1001 outputs); the largest absolute difference between the two softmax vectors (all
1001 probabilities; TFLite's dequantised as ``q / 256``); images/s of each, inference
only (``set_tensor`` + ``invoke`` for TFLite; the batched forward for torch).

Usage::

    python benchmarks/bench_mobilenet_port.py --tflite mobilenet_v2_1.0_224_quant.tflite \\
        --data-root tiny-imagenet-200 --synsets imagenet_synsets.txt \\
        [--n 5000] [--threads 2] [--batch 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from semcom.models.tflite_import import mobilenet_v2_from_tflite

LOGITS_TENSOR = "MobilenetV2/Logits/Squeeze1"
#: images decoded at a time (the torch forward runs over them in ``--batch`` pieces)
CHUNK = 50


def load_labels(root: Path, synsets: Path, n: int) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Image files, their labels (0..199, ``wnids.txt`` order) and the 200 output indices."""
    wnids = (root / "wnids.txt").read_text().split()
    syn = synsets.read_text().split()
    cols = np.array([syn.index(w) + 1 for w in wnids])
    ann = {}
    for line in (root / "val" / "val_annotations.txt").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            ann[parts[0]] = parts[1]
    names = [f"val_{i}.JPEG" for i in range(n)]
    missing = [s for s in names if s not in ann]
    if missing:
        sys.exit(f"{len(missing)} of the first {n} images have no annotation (e.g. {missing[0]})")
    pos = {w: i for i, w in enumerate(wnids)}
    labels = np.array([pos[ann[s]] for s in names])
    return [root / "val" / "images" / s for s in names], labels, cols


def read_image(path: Path) -> np.ndarray:
    """uint8 ``(224, 224, 3)`` RGB, as README V1."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((224, 224), Image.BILINEAR))


def topk_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per row: label among the ``k`` best, ranked descending with ties broken by the
    lower index (stable sort of the negated scores)."""
    order = np.argsort(-scores.astype(np.float64), axis=1, kind="stable")[:, :k]
    return (order == labels[:, None]).any(axis=1)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tflite", type=Path, required=True)
    ap.add_argument("--data-root", type=Path, required=True, help="holds wnids.txt, val/")
    ap.add_argument("--synsets", type=Path, required=True, help="imagenet_synsets.txt")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1, help="torch batch size (1: fastest on CPU)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    from ai_edge_litert.interpreter import Interpreter

    torch.set_num_threads(args.threads)
    files, labels, cols = load_labels(args.data_root, args.synsets, args.n)
    t0 = time.perf_counter()
    model = mobilenet_v2_from_tflite(args.tflite).to(memory_format=torch.channels_last)
    t_import = time.perf_counter() - t0

    interp = Interpreter(model_path=str(args.tflite), num_threads=args.threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]
    dbg = Interpreter(
        model_path=str(args.tflite),
        num_threads=args.threads,
        experimental_preserve_all_tensors=True,
    )
    dbg.allocate_tensors()
    (lg,) = [d for d in dbg.get_tensor_details() if d["name"] == LOGITS_TENSOR]
    lg_scale, lg_zp = lg["quantization"]

    n = len(files)
    tfl_q = np.zeros((n, 1001), np.uint8)
    tfl_logit_q = np.zeros((n, 1001), np.uint8)
    torch_logits = np.zeros((n, 1001), np.float32)
    t_tfl = t_torch = 0.0
    for start in range(0, n, CHUNK):
        batch = np.stack([read_image(f) for f in files[start : start + CHUNK]])
        for j, img in enumerate(batch):
            t0 = time.perf_counter()
            interp.set_tensor(inp, img[None])
            interp.invoke()
            t_tfl += time.perf_counter() - t0
            tfl_q[start + j] = interp.get_tensor(out["index"])[0]
            dbg.set_tensor(dbg.get_input_details()[0]["index"], img[None])
            dbg.invoke()
            tfl_logit_q[start + j] = dbg.get_tensor(lg["index"])[0]
        x = torch.from_numpy(batch).permute(0, 3, 1, 2)  # NHWC memory = channels_last
        t0 = time.perf_counter()
        with torch.inference_mode():
            y = torch.cat(
                [
                    model(x[i : i + args.batch].float().div_(255))
                    for i in range(0, len(x), args.batch)
                ]
            )
        t_torch += time.perf_counter() - t0
        torch_logits[start : start + len(batch)] = y.numpy()
        if (start // CHUNK) % 20 == 0:
            print(f"  {start + len(batch)}/{n} images", file=sys.stderr, flush=True)

    tfl_p = tfl_q.astype(np.float64) / 256
    tfl_logits = (tfl_logit_q.astype(np.float64) - lg_zp) * lg_scale
    e = np.exp(torch_logits - torch_logits.max(axis=1, keepdims=True))
    torch_p = e / e.sum(axis=1, keepdims=True)

    res: dict = dict(n=n, threads=args.threads, batch=args.batch, import_s=round(t_import, 3))
    for name, scores in (
        ("tflite_softmax", tfl_p[:, cols]),
        ("tflite_logits", tfl_logits[:, cols]),
        ("torch", torch_logits[:, cols]),
    ):
        res[f"top1_{name}"] = float(topk_hits(scores, labels, 1).mean())
        res[f"top5_{name}"] = float(topk_hits(scores, labels, 5).mean())
    a_torch = torch_logits[:, cols].argmax(1)
    res["agree200_vs_tflite_softmax"] = float((a_torch == tfl_p[:, cols].argmax(1)).mean())
    res["agree200_vs_tflite_logits"] = float((a_torch == tfl_logits[:, cols].argmax(1)).mean())
    res["agree1001_vs_tflite_logits"] = float(
        (torch_logits.argmax(1) == tfl_logits.argmax(1)).mean()
    )
    diff = np.abs(torch_p - tfl_p).max(axis=1)
    res["max_abs_prob_diff"] = float(diff.max())
    res["mean_max_abs_prob_diff"] = float(diff.mean())
    res["p99_max_abs_prob_diff"] = float(np.quantile(diff, 0.99))
    res["max_abs_logit_diff"] = float(np.abs(torch_logits - tfl_logits).max())
    res["tflite_img_per_s"] = n / t_tfl
    res["torch_img_per_s"] = n / t_torch

    print(f"MobileNetV2 port vs TFLite, Tiny-ImageNet val, first {n} images, 200 classes")
    print(f"threads {args.threads}, torch batch {args.batch}, weight import {t_import:.2f} s")
    print(f"{'':24s} {'top-1':>7s} {'top-5':>7s}")
    for name, label in (
        ("tflite_softmax", "TFLite (uint8 softmax)"),
        ("tflite_logits", "TFLite (logits)"),
        ("torch", "torch port"),
    ):
        print(f"{label:24s} {res[f'top1_{name}']:7.4f} {res[f'top5_{name}']:7.4f}")
    print(
        f"argmax agreement (200 classes): torch vs TFLite softmax "
        f"{res['agree200_vs_tflite_softmax']:.4f}, vs TFLite logits "
        f"{res['agree200_vs_tflite_logits']:.4f}; all 1001 outputs vs logits "
        f"{res['agree1001_vs_tflite_logits']:.4f}"
    )
    print(
        f"|softmax torch - TFLite| (1001 probs): max {res['max_abs_prob_diff']:.4f}, "
        f"per-image max: mean {res['mean_max_abs_prob_diff']:.4f}, "
        f"p99 {res['p99_max_abs_prob_diff']:.4f}; max |logit diff| "
        f"{res['max_abs_logit_diff']:.3f}"
    )
    print(
        f"speed (inference only): TFLite {res['tflite_img_per_s']:.1f} img/s (batch 1), "
        f"torch {res['torch_img_per_s']:.1f} img/s (batch {args.batch})"
    )
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
