"""The Fréchet distance of feature sets and the ``fd-alex`` judge (random AlexNet weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from semcom.errors import InputError
from semcom.metrics.frechet import frechet_distance


def test_frechet_distance_is_the_formula() -> None:
    import scipy.linalg

    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 6))
    b = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)) + 0.7
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = (a.mean(0) - b.mean(0)) @ (a.mean(0) - b.mean(0)) + np.trace(
        sa + sb - 2 * scipy.linalg.sqrtm(sa @ sb).real
    )
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(torch.from_numpy(b), torch.from_numpy(a)) == pytest.approx(ref)
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    x, y = rng.normal(1, 2, (500, 1)), rng.normal(-1, 3, (400, 1))
    one = (x.mean() - y.mean()) ** 2 + (x.std(ddof=1) - y.std(ddof=1)) ** 2
    assert frechet_distance(x, y) == pytest.approx(one, rel=1e-9)
    # more dimensions than vectors: rank-deficient covariances still give a number
    assert frechet_distance(rng.normal(size=(5, 40)), rng.normal(size=(7, 40))) > 0


def test_frechet_distance_refuses_bad_sets() -> None:
    for a, b in (
        (np.zeros((4, 3)), np.zeros((4, 2))),
        (np.zeros((1, 3)), np.zeros((4, 3))),
        (np.zeros(4), np.zeros(4)),
        (np.full((3, 2), np.nan), np.zeros((3, 2))),
    ):
        with pytest.raises(InputError):
            frechet_distance(a, b)


def _alex_folder(tmp_path: Path) -> Path:
    from semcom.metrics.lpips_net import LPIPS, NETS

    torch.manual_seed(0)
    sd = LPIPS("alex").state_dict()
    trunk, heads = NETS["alex"][2]
    for name, prefix in ((trunk, "features."), (heads, "lin")):
        part = {k: v.contiguous() for k, v in sd.items() if k.startswith(prefix)}
        save_file(part, tmp_path / name)
    return tmp_path


def test_fd_alex_judge_compares_sets(tmp_path: Path) -> None:
    from semcom.judges import create_judge
    from semcom.judges.scoring import judge_reconstructions

    judge = create_judge(f"fd-alex={_alex_folder(tmp_path)}")
    assert judge.yields == "distribution" and not judge.higher_is_better
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 3, 40, 48), dtype=torch.uint8, generator=g)
    same = judge_reconstructions(judge, images, images, None, None, batch_size=5)
    assert same["fd-alex"] == pytest.approx(0.0, abs=1e-6)
    blurred = images.float().reshape(12, 3, 20, 2, 24, 2).mean((3, 5))
    blurred = blurred.repeat_interleave(2, -1).repeat_interleave(2, -2).to(torch.uint8)
    grey = torch.full_like(images, 128)
    d_blur = judge_reconstructions(judge, images, blurred, None, None, batch_size=5)["fd-alex"]
    d_grey = judge_reconstructions(judge, images, grey, None, None, batch_size=5)["fd-alex"]
    assert 0 < d_blur < d_grey
    # the batch size does not change a set-level figure
    assert judge_reconstructions(judge, images, blurred, None, None, 12)["fd-alex"] == (
        pytest.approx(d_blur, rel=1e-9)
    )
    assert judge_reconstructions(judge, images[:1], grey[:1], None, None) == {}
    with pytest.raises(InputError, match="at least 31"):
        judge(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
    with pytest.raises(InputError, match="needs the folder"):
        create_judge("fd-alex")


def test_the_single_image_judge_command_refuses_a_set_judge(tmp_path: Path) -> None:
    from PIL import Image

    from semcom.experiments.receiver import judge_image

    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(path)
    with pytest.raises(InputError, match="sets of images"):
        judge_image(path, [f"fd-alex={_alex_folder(tmp_path)}"], ref=path)
