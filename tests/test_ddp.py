"""DistributedDataParallel training: 2 CPU ranks (gloo) launched with torchrun.

Checks that both ranks end with identical parameters and that, with a batch-independent
model (GroupNorm, no dropout), the result equals a single-process run on the same global
batches -- i.e. gradients were averaged over the global batch.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file

from semcom.train import train_task_model

GN = {"num_classes": 3, "widths": [8, 8, 16, 16], "norm": "group", "dropout": 0.0}
BN = {"num_classes": 3, "widths": [8, 8, 16, 16]}
STEPS, BATCH = 4, 8

_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import torch
    import torch.distributed as dist
    from safetensors.torch import save_file
    from torch.utils.data import TensorDataset
    sys.path.insert(0, sys.argv[2])
    from test_ddp import GN, BN, STEPS, BATCH, toy_dataset
    from semcom.train import train_task_model

    out = sys.argv[1]
    rank = int(os.environ["RANK"])
    dist.init_process_group("gloo")   # pre-initialised group: train_task_model reuses it
    for tag, kw in (("gn", GN), ("bn", BN)):
        res = train_task_model(
            "shape-classifier", os.path.join(out, tag), steps=STEPS, batch_size=BATCH,
            lr=1e-2, data=toy_dataset(), model_kw=kw, eval_n=0, quiet=True, ckpt_every=2,
        )
        sd = {k: v.contiguous() for k, v in res.model.state_dict().items()}
        save_file(sd, os.path.join(out, f"{tag}-rank{rank}.safetensors"))
    assert dist.is_initialized()
    dist.destroy_process_group()
    """
)


def toy_dataset() -> torch.utils.data.TensorDataset:
    """32 random uint8 16x16 images, labels 0..2."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (32, 3, 16, 16), generator=g, dtype=torch.uint8)
    return torch.utils.data.TensorDataset(x, torch.arange(32) % 3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_ranks_match_single_process(tmp_path: Path) -> None:
    script = tmp_path / "ddp_worker.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
        "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()),
        str(script), str(tmp_path), str(Path(__file__).parent),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    for tag in ("gn", "bn"):
        r0 = load_file(tmp_path / f"{tag}-rank0.safetensors")
        r1 = load_file(tmp_path / f"{tag}-rank1.safetensors")
        for k in r0:
            assert torch.equal(r0[k], r1[k]), (tag, k)
        # Only rank 0 wrote the run's files.
        assert (tmp_path / tag / "shape-classifier.safetensors").is_file()
        assert (tmp_path / tag / "last_state.pt").is_file()

    torch.set_num_threads(1)
    try:
        single = train_task_model(
            "shape-classifier", tmp_path / "single", steps=STEPS, batch_size=BATCH,
            lr=1e-2, data=toy_dataset(), model_kw=GN, eval_n=0, quiet=True,
        )  # fmt: skip
    finally:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    ddp = load_file(tmp_path / "gn-rank0.safetensors")
    init = None
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(ddp[k], v, rtol=1e-4, atol=1e-5, msg=k)
    # The runs really trained (parameters moved from their seeded init).
    torch.manual_seed(0)
    from semcom.models import create_model

    init = create_model("shape-classifier", **GN).state_dict()
    assert not torch.allclose(init["head.fc.weight"], ddp["head.fc.weight"])
