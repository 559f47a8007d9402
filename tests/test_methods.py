"""Adaptation methods: each lowers its own loss, touches only its parameters, resets exactly."""
import math

import pytest
import torch

from tttgui.errors import UserError
from tttgui.methods import Adapter, MethodConfig, get_method, method_defaults, method_names
from tttgui.models import ModelSpec, build_model
from tttgui.stats import source_statistics

ADAPTING = [m for m in method_names("episodic") if m != "source"]
ONLINE = [m for m in method_names("online") if m != "source"]     # aws adapts on streams only


def tiny_model(seed=0, heads=("rotation", "contrastive")):
    """ResNet-8 (GN) at 16 px: the real architecture family, small enough for fast tests."""
    torch.manual_seed(seed)
    spec = ModelSpec(heads=heads, arch_args={"depth": 8, "width": 1, "norm": "gn"}, input_size=16,
                     proj_hidden=32, proj_dim=16)
    model = build_model(spec).eval()
    images = torch.randint(0, 256, (48, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return model, source_statistics(model, images, "cpu")


@pytest.fixture(scope="module")
def tiny():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny tensors: one thread is faster and immune to a busy machine
    yield tiny_model()
    torch.set_num_threads(threads)


def image(seed=2, n=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 16, 16, generator=g)


def fresh(tiny, method, **kw):
    import copy
    model, stats = tiny
    model = copy.deepcopy(model)
    return model, Adapter(model, stats, MethodConfig(method, views=8, **kw), "cpu")


@pytest.mark.parametrize("method", ADAPTING)
def test_method_lowers_its_own_loss_on_a_fixed_batch(tiny, method):
    # A random-init net is far more sensitive than a trained one: a small step checks the gradient's direction.
    lr = min(method_defaults(method)["lr"], 1e-3)
    model, ad = fresh(tiny, method, lr=lr)
    x = image()
    batch = ad.method.draw(x, torch.Generator().manual_seed(0))
    with torch.enable_grad():
        before = float(ad.method.loss(model, batch).detach())
    for _ in range(5):
        assert ad.update(x, batch=batch).status == "ok"
        ad.method.reset_state()   # TTT++ online queue: compare the same loss
    with torch.enable_grad():
        after = float(ad.method.loss(model, batch).detach())
    assert after < before, (method, before, after)


EXPECTED_GROUPS = {   # default parameter set -> which parts of the model may change
    "ttt": {"trunk", "rot_body", "rot_fc"},
    "tent": {"norm"},
    "memo": {"trunk", "main", "fc"},
    "actmad": {"trunk", "main"},   # the loss never reaches fc: it stays as it was
    "ttt++": {"trunk", "main"},
}


def _changed(model, before):
    out = set()
    for name, p in model.named_parameters():
        if not torch.equal(p, before[name]):
            out.add(name)
    return out


@pytest.mark.parametrize("method", ADAPTING)
def test_only_the_intended_parameters_change(tiny, method):
    model, ad = fresh(tiny, method)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(2):
        assert ad.update(image()).status == "ok"
    changed = _changed(model, before)
    assert changed
    norm_names = {f"{n}.{pn}" for n, m in model.named_modules()
                  if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)) for pn, _ in m.named_parameters()}
    allowed = EXPECTED_GROUPS[method]
    for name in changed:
        if "norm" in allowed:
            assert name in norm_names, name
        else:
            assert name.split(".")[0] in allowed, name
    if method == "tent":
        assert not any("conv" in n for n in changed)


@pytest.mark.parametrize("choice", ["norm", "trunk"])
def test_parameter_choice_is_respected(tiny, choice):
    model, ad = fresh(tiny, "ttt", params=choice)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ad.update(image())
    changed = _changed(model, before)
    assert changed
    if choice == "norm":   # norm layers of every branch the loss reaches (trunk and rotation head)
        assert all(n.split(".")[-2].startswith("bn") for n in changed), changed
    else:
        assert all(n.startswith("trunk.") for n in changed), changed


@pytest.mark.parametrize("method", ONLINE)
def test_reset_restores_every_tensor_bit_exactly(tiny, method):
    model, ad = fresh(tiny, method, protocol="online")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pair = ad.method.min_batch > 1      # aws learns from in-batch pairs: two images a step
    batch = lambda seed: torch.cat([image(seed), image(seed + 10)]) if pair else image(seed)  # noqa: E731
    for _ in range(3):
        ad.update(batch(3))
    ad.reset()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert len(ad.optimizer.state) == 0
    # a reset adapter repeats a run exactly
    ad.seed(5)
    ad.update(batch(4))
    first = {k: v.clone() for k, v in model.state_dict().items()}
    ad.reset()
    ad.seed(5)
    ad.update(batch(4))
    for k, v in model.state_dict().items():
        assert torch.equal(v, first[k]), k


def test_nan_loss_stops_without_touching_the_model(tiny):
    model, ad = fresh(tiny, "ttt")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ad.method.loss = lambda m, b: (m.rotation_logits(b["views"]).sum() * float("nan"))
    assert ad.update(image()).status == "diverged"
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_defaults_come_from_the_papers():
    ttt_e, ttt_o = method_defaults("ttt", "episodic"), method_defaults("ttt", "online")
    assert (ttt_e["steps"], ttt_e["lr"], ttt_e["views"], ttt_e["optimizer"], ttt_e["momentum"]) == \
        (10, 1e-3, 32, "sgd", 0.0)
    assert ttt_o["steps"] == 1
    memo = method_defaults("memo")
    assert (memo["steps"], memo["lr"], memo["views"], memo["optimizer"]) == (1, 0.005, 32, "sgd")
    tent = method_defaults("tent", "online")
    assert (tent["optimizer"], tent["lr"]) == ("adam", 1e-3)
    assert method_defaults("actmad", "online")["lr"] == 1e-2
    assert method_defaults("ttt++")["lr"] == 1e-2


def test_bad_input_is_one_line_user_error(tiny):
    model, stats = tiny
    for cfg in (MethodConfig("nope"), MethodConfig("ttt", params="heads"), MethodConfig("ttt", steps=-1),
                MethodConfig("ttt", optimizer="rmsprop"), MethodConfig("ttt", protocol="sometimes"),
                MethodConfig("ttt", lr=math.nan)):
        with pytest.raises(UserError) as err:
            Adapter(model, stats, cfg, "cpu")
        assert "\n" not in str(err.value)
    plain, plain_stats = tiny_model(heads=())
    with pytest.raises(UserError, match="rotation"):
        Adapter(plain, plain_stats, MethodConfig("ttt"), "cpu")
    assert get_method("TTT").name == "ttt"


def test_cosine_is_computed_only_with_a_label(tiny):
    model, ad = fresh(tiny, "tent")
    assert ad.update(image()).grad_cosine is None
    up = ad.update(image(), labels=torch.tensor([1]))
    assert up.grad_cosine is not None and -1 <= up.grad_cosine <= 1


def test_ttt_plus_plus_queue_is_online_only(tiny):
    model, ad = fresh(tiny, "ttt++", protocol="online", lr=1e-4)
    ad.update(image())
    assert ad.method.queue["features"].shape[0] == 8 and "projection" in ad.method.queue
    ad.update(image(5))
    assert ad.method.queue["features"].shape[0] == 16
    ad.reset()
    assert ad.method.queue == {}
    model, ep = fresh(tiny, "ttt++", lr=1e-4)
    ep.update(image())
    assert ep.method.queue == {}


@pytest.mark.parametrize("arch,size,methods", [
    ("test_resnet", 32, ["ttt", "tent", "actmad", "memo", "ttt++"]),   # BatchNorm backbone
    ("test_vit", 160, ["tent"]),                                        # LayerNorm, tokens
])
def test_methods_run_on_timm_backbones(arch, size, methods):
    import dataclasses
    from tttgui.models.factory import timm_spec
    torch.manual_seed(0)
    spec = dataclasses.replace(timm_spec(arch, pretrained=False, heads=("rotation",)), input_size=size)
    model = build_model(spec).eval()
    stats = source_statistics(model, torch.randint(0, 256, (6, size, size, 3), dtype=torch.uint8), "cpu")
    x = torch.rand(1, 3, size, size)
    for method in methods:
        before = {k: v.clone() for k, v in model.state_dict().items()}
        ad = Adapter(model, stats, MethodConfig(method, views=2, lr=1e-4), "cpu")
        up = ad.update(x)
        assert up.status == "ok" and up.grad_norm > 0, method
        changed = _changed(model, before)
        assert changed, method
        if method == "tent":
            kinds = (torch.nn.LayerNorm, torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm)
            norm = {f"{n}.{pn}" for n, m in model.named_modules() if isinstance(m, kinds)
                    for pn, _ in m.named_parameters(recurse=False)}
            assert changed <= norm
        ad.reset()
        for k, v in model.state_dict().items():
            assert torch.equal(v, before[k]), (method, k)


def test_augmix_views_are_seeded_images_and_equalize_matches_pil():
    import numpy as np
    from PIL import Image, ImageOps
    from tttgui.augment import _equalize, augmix_views
    x = image(n=6)
    a = augmix_views(x, torch.Generator().manual_seed(1))
    b = augmix_views(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape and 0 <= a.min() and a.max() <= 1
    assert not torch.equal(a, augmix_views(x, torch.Generator().manual_seed(2)))
    u8 = (np.random.default_rng(0).beta(2, 5, (16, 16, 3)) * 255).astype(np.uint8)
    ours = _equalize(torch.from_numpy(u8).permute(2, 0, 1)[None].float() / 255)[0].permute(1, 2, 0)
    assert np.array_equal((ours * 255).round().byte().numpy(), np.asarray(ImageOps.equalize(Image.fromarray(u8))))


def test_actmad_loss_is_the_originals_on_a_known_batch(tiny):
    """0.5 × (Σ_layers mean|μ_batch − μ_src| + Σ_layers mean|σ²_batch − σ²_src|), per (channel, h, w) over the batch,
    with torch.var's default (unbiased) batch variance as in jmiemirza/ActMAD's SaveEmb; the population variance
    gave another number."""
    from tttgui.stats import capture_norm_outputs

    model, ad = fresh(tiny, "actmad")
    views = image(seed=3, n=6)
    with torch.no_grad(), capture_norm_outputs(model) as outs:
        model(views)
    targets = ad.method.targets
    expect = 0.5 * sum((o.mean(0) - targets[n][0]).abs().mean() + (torch.var(o, dim=0) - targets[n][1]).abs().mean()
                       for n, o in outs.items())
    biased = 0.5 * sum((o.mean(0) - targets[n][0]).abs().mean()
                       + (o.var(0, unbiased=False) - targets[n][1]).abs().mean() for n, o in outs.items())
    with torch.no_grad():
        got = ad.method.loss(model, {"views": views})
    assert float(got) == pytest.approx(float(expect), rel=1e-5) and abs(float(expect) - float(biased)) > 1e-4
