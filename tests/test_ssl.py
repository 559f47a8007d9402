"""The self-supervised phase: SimCLR views as torchvision composes its CIFAR recipe, NT-Xent values pinned."""
import math

import pytest
import torch
import torchvision.transforms.functional as TF

from tttgui.augment import _contrast, _gray, _hue_shift, _saturation, simclr_views
from tttgui.training import kept_heads, nt_xent, ssl_tasks, TrainConfig
from tttgui.errors import UserError


def test_nt_xent_pinned_values():
    # positives identical, negatives orthogonal, temperature 0.5: each row's loss is log(1 + 2 e^-2)
    e = torch.eye(2)
    z = torch.cat([e, e])
    assert nt_xent(z, 0.5).item() == pytest.approx(math.log(1 + 2 * math.exp(-2)), abs=1e-6)
    # all projections equal: every one of the 2N-1 candidates is as likely, log(2N - 1)
    z = torch.nn.functional.normalize(torch.ones(8, 4), dim=1)
    assert nt_xent(z, 0.5).item() == pytest.approx(math.log(7), abs=1e-6)


def test_colour_ops_match_torchvision():
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    for f in (-0.1, 0.03, 0.1):
        ref = torch.stack([TF.adjust_hue(v, f) for v in x])
        assert torch.allclose(_hue_shift(x, torch.full((6,), f)), ref, atol=1e-5)
    f = torch.full((6,), 1.35)
    assert torch.allclose(_contrast(x, f), torch.stack([TF.adjust_contrast(v, 1.35) for v in x]), atol=1e-6)
    assert torch.allclose(_saturation(x, f), torch.stack([TF.adjust_saturation(v, 1.35) for v in x]), atol=1e-6)
    assert torch.allclose(_gray(x), torch.stack([TF.rgb_to_grayscale(v) for v in x]), atol=1e-6)


def test_simclr_views_recipe_rates_and_seeding():
    x = torch.rand(1, 3, 32, 32).expand(4000, -1, -1, -1).contiguous()
    v = simclr_views(x, torch.Generator().manual_seed(1))
    assert torch.equal(v, simclr_views(x, torch.Generator().manual_seed(1)))
    assert v.shape == x.shape and v.min() >= 0 and v.max() <= 1
    gray = (v[:, 0] == v[:, 1]).all(dim=(1, 2)) & (v[:, 1] == v[:, 2]).all(dim=(1, 2))
    assert 0.17 < gray.float().mean() < 0.23                      # RandomGrayscale(p=0.2)
    # without a crop (scale 1, ratio 1 happens rarely) the views differ from the image: every view is new
    assert (v - x).abs().flatten(1).amax(1).min() > 0


def test_ssl_task_names_and_kept_heads():
    assert ssl_tasks("rotation+simclr") == ("rotation", "simclr")
    with pytest.raises(UserError, match="expected rotation, simclr or rotation"):
        ssl_tasks("rotation+jigsaw")
    cfg = TrainConfig(data="", out="", ssl="simclr", heads=("rotation",))
    assert kept_heads(cfg) == ("rotation", "contrastive")
    assert kept_heads(TrainConfig(data="", out="", ssl="simclr", ssl_epochs=0, heads=())) == ()
