"""TTT++ as vita-epfl/ttt-plus-plus computes it: scales, views, contrastive weight, queue."""
import copy

import pytest
import torch
import torch.nn.functional as F

from tttgui.augment import crop_flip
from tttgui.methods import Adapter, MethodConfig
from tttgui.methods import tttpp
from tttgui.stats import coral, covariance, linear_mmd, source_statistics, statistics_sample

from test_methods import tiny_model


def smooth_images(n, seed):
    """uint8 NHWC 16 px images of low-frequency colour blobs (a 'source distribution')."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=16, mode="bilinear", align_corners=False)
    return (x * 255).round().byte().permute(0, 2, 3, 1).contiguous()


@pytest.fixture(scope="module")
def source():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model, _ = tiny_model()
    images = smooth_images(2 * tttpp.QUEUE + 100, 1)
    yield model, source_statistics(model, statistics_sample(images, len(images), 0), "cpu"), images
    torch.set_num_threads(threads)


def test_source_statistics_measure_the_batch_vs_batch_yardstick_at_the_queue_size(source):
    model, stats, images = source
    align = stats["features"]["align"]
    assert align["batch"] == 1536 == tttpp.QUEUE and stats["transform"] == "crop+flip"
    x = statistics_sample(images, len(images), 0).permute(0, 3, 1, 2).float() / 255   # what stats saw
    with torch.no_grad():
        f = model.features(x).double()
        raw = model.projector.net(model.features(x))
    # an independent estimate from other splits: the mean divergence of two disjoint source batches of 1536
    g = torch.Generator().manual_seed(99)
    c = m = 0.0
    for _ in range(8):
        idx = torch.randperm(len(f), generator=g)
        a, b = f[idx[:1536]], f[idx[1536:3072]]
        c += float(coral(covariance(a), covariance(b))) / 8
        m += float(linear_mmd(a.mean(0), b.mean(0))) / 8
    assert align["coral"] == pytest.approx(c, rel=0.25) and align["mmd"] == pytest.approx(m, rel=0.35)
    # the projection statistics are of head(ext(x)) before the L2 normalisation
    assert stats["projection"]["space"] == "head"
    assert torch.allclose(stats["projection"]["mean"], raw.mean(0), atol=1e-4)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(len(raw)), atol=0.05)


def test_each_alignment_term_is_about_one_for_a_source_batch_and_far_above_for_a_shifted_one(source):
    model, stats, _ = source
    method = Adapter(copy.deepcopy(model), stats, MethodConfig("ttt++", protocol="online"), "cpu").method
    clean = smooth_images(tttpp.QUEUE, 7)          # other images of the source distribution
    x = crop_flip(clean.permute(0, 3, 1, 2).float() / 255, torch.Generator().manual_seed(3))
    shifted = (x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4))).clamp(0, 1)
    with torch.no_grad():
        for space, fn in (("features", model.features), ("projection", lambda v: model.projector.net(
                model.features(v)))):
            src = [float(t) for t in method.terms(space, fn(x))]
            far = [float(t) for t in method.terms(space, fn(shifted))]
            # a batch against the stored source moments: 0.5-1 batch-vs-batch yardsticks (the old scale: ~768)
            assert all(0.25 < t < 2 for t in src), (space, src)
            assert all(t > 5 for t in far), (space, far)


def test_gaussian_yardstick_for_statistics_without_a_measured_one(source):
    _, stats, _ = source
    space = {k: v for k, v in stats["features"].items() if k != "align"}
    cov = space["cov"].double()
    d, tr = cov.shape[0], float(torch.diagonal(cov).sum())
    c, m = tttpp.yardstick(space, 1536)
    assert c == pytest.approx(2 * (float(cov.pow(2).sum()) + tr ** 2) / (1535 * 4 * d * d))
    assert m == pytest.approx(2 * tr / (1536 * d))
    # measured at another batch size: rescaled by 1/batch
    measured = {**space, "align": {"batch": 24, "coral": 1.0, "mmd": 2.0}}
    assert tttpp.yardstick(measured, 1536) == pytest.approx((23 / 1535, 2.0 * 24 / 1536))


def supcon(features, temperature=0.5, base_temperature=0.07):
    """SupConLoss(temperature=0.5) of the original, without labels, features [bsz, 2, dim] (an independent
    transcription of its formula: mean over anchors of -(T/T_base) log p(positive))."""
    bsz = features.shape[0]
    contrast = torch.cat(torch.unbind(features, 1), 0)
    logits = contrast @ contrast.t() / temperature
    logits = logits - logits.max(1, keepdim=True).values
    self_mask = 1 - torch.eye(2 * bsz)
    pos = torch.eye(bsz).repeat(2, 2) * self_mask
    log_prob = logits - torch.log((torch.exp(logits) * self_mask).sum(1, keepdim=True))
    return (-(temperature / base_temperature) * (pos * log_prob).sum(1) / pos.sum(1)).mean()


def test_contrastive_term_is_supcon_with_its_base_temperature():
    z = F.normalize(torch.randn(12, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    ours = tttpp.contrastive(z)                  # rows i and i + 6 are the two views of sample i
    ref = supcon(torch.stack([z[:6], z[6:]], 1))
    assert float(ours) == pytest.approx(float(ref), rel=1e-5)
    assert tttpp.TEMPERATURE / tttpp.BASE_TEMPERATURE == pytest.approx(7.142857, rel=1e-6)


def test_test_images_are_aligned_with_the_statistics_transform_not_simclr_views(source):
    model, stats, images = source
    method = Adapter(copy.deepcopy(model), stats, MethodConfig("ttt++", views=4), "cpu").method
    x = images[:2].permute(0, 3, 1, 2).float() / 255
    batch = method.draw(x, torch.Generator().manual_seed(5))
    expected = crop_flip(x[torch.arange(4) % 2], torch.Generator().manual_seed(5))
    assert torch.equal(batch["align"], expected)
    assert batch["views"].shape[0] == 4 and not torch.equal(batch["views"], expected)


def test_queue_joins_only_once_full(source, monkeypatch):
    model, stats, images = source
    monkeypatch.setattr(tttpp, "QUEUE", 24)
    ad = Adapter(copy.deepcopy(model), stats, MethodConfig("ttt++", protocol="online", views=8, lr=1e-4), "cpu")
    x = images[:8].permute(0, 3, 1, 2).float() / 255
    sizes = []
    for _ in range(4):
        assert ad.update(x.clone()).status == "ok"          # four batches (one tensor again = more steps on one)
        sizes.append(ad.method.aligned["features"])
    assert sizes == [8, 8, 24, 24]               # 16 stored after two batches: the queue of 24 - 8 is full


def test_old_projection_statistics_are_refused_in_one_line(source):
    from tttgui.errors import UserError
    model, stats, _ = source
    old = {**stats, "projection": {k: v for k, v in stats["projection"].items() if k != "space"}}
    with pytest.raises(UserError, match="tttgui stats"):
        Adapter(copy.deepcopy(model), old, MethodConfig("ttt++"), "cpu")


def test_observe_fills_the_queue_without_a_step(source):
    model, stats, images = source
    ad = Adapter(copy.deepcopy(model), stats, MethodConfig("ttt++", protocol="online", views=8), "cpu")
    before = {k: v.clone() for k, v in ad.model.state_dict().items()}
    x = images[:8].permute(0, 3, 1, 2).float() / 255
    assert ad.observe(x) > 0 and ad.observe(x.clone()) > 0
    assert ad.method.queue["features"].shape[0] == 16 and ad.method.queue["projection"].shape[0] == 16
    assert all(torch.equal(v, before[k]) for k, v in ad.model.state_dict().items())


def _offline_trace(model, stats, images, monkeypatch, epochs=5):
    """Per Adapter call of an offline TTT++ cell: (epoch's call kind, features queued, whether it aligned)."""
    import numpy as np

    from tttgui.evaluation import EvalConfig, evaluate
    from tttgui.methods.adapter import Adapter as Ad

    trace = []
    real_observe, real_update = Ad.observe, Ad.update

    def observe(self, x):
        self.method.aligned = {}
        out = real_observe(self, x)
        trace.append(("observe", len(self.method.queue.get("features", [])), bool(self.method.aligned)))
        return out

    def update(self, x, *a, **k):
        self.method.aligned = {}
        out = real_update(self, x, *a, **k)
        trace.append(("update", len(self.method.queue.get("features", [])), bool(self.method.aligned)))
        return out
    monkeypatch.setattr(Ad, "observe", observe)
    monkeypatch.setattr(Ad, "update", update)
    x = images[:8].numpy()
    cfg = EvalConfig(corruptions=("gaussian_noise",), methods=("ttt++",), epochs=epochs, batch_size=4,
                     settings=MethodConfig(protocol="offline", views=4, lr=1e-4))
    evaluate(model, stats, x, np.zeros(8, int), np.arange(8), cfg, "cpu")
    return trace


def test_offline_follows_the_originals_epochs_with_the_contrastive_head(source, monkeypatch):
    """ttt++.py --method both --bnepoch 2: epochs 1-2 forward only, epoch 3 contrastive steps alone, the
    alignment (and its queue) from epoch 4 (is_both_activated is set at the end of epoch 3)."""
    model, stats, images = source
    trace = _offline_trace(copy.deepcopy(model), stats, images, monkeypatch)
    per_epoch = [trace[e * 2:e * 2 + 2] for e in range(5)]           # 8 images in batches of 4
    assert per_epoch[0] == per_epoch[1] == [("observe", 0, False)] * 2
    assert per_epoch[2] == [("update", 0, False)] * 2
    assert per_epoch[3] == [("update", 4, True), ("update", 8, True)]
    assert per_epoch[4] == [("update", 12, True), ("update", 16, True)]


def test_offline_align_only_fills_its_queue_from_the_first_epoch(source, monkeypatch):
    """--method align: the alignment runs in every epoch, its forward-only epochs fill the queue."""
    model, stats, images = source
    plain = copy.deepcopy(model)
    plain.spec = type(plain.spec)(**{**plain.spec.__dict__, "heads": ("rotation",)})
    trace = _offline_trace(plain, stats, images, monkeypatch, epochs=3)
    assert trace[:4] == [("observe", 4, True), ("observe", 8, True), ("observe", 12, True), ("observe", 16, True)]
    assert trace[4:] == [("update", 20, True), ("update", 24, True)]


def test_the_encoders_batchnorm_adapts_in_train_mode_as_ext_train():
    """On a BatchNorm model the loss normalises with the batch and the encoder's running statistics move (the
    original's ext.train()); predictions use them in eval mode; a reset restores them."""
    from tttgui.models import ModelSpec, build_model
    from tttgui.stats import source_statistics as stats_of

    torch.manual_seed(0)
    model = build_model(ModelSpec(heads=("rotation", "contrastive"), input_size=16, proj_hidden=32, proj_dim=16,
                                  arch_args={"depth": 8, "width": 1, "norm": "bn"})).eval()
    images = smooth_images(64, 2)
    stats = stats_of(model, images, "cpu")
    ad = Adapter(model, stats, MethodConfig("ttt++", protocol="online", views=8, lr=1e-3), "cpu")
    bns = [m for m in model.trunk.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    seen = []
    bns[0].register_forward_hook(lambda m, i, o: seen.append(m.training))
    before = bns[0].running_mean.clone()
    x = images[:8].permute(0, 3, 1, 2).float() / 255
    assert ad.update(x).status == "ok"
    assert seen and all(seen) and not bns[0].training       # train mode in the loss only
    assert not torch.allclose(bns[0].running_mean, before)
    seen.clear()
    ad.predict(x)
    assert seen == [False]
    ad.reset()
    assert torch.equal(bns[0].running_mean, before)


def test_several_steps_on_one_batch_queue_its_features_once(source, monkeypatch):
    model, stats, images = source
    monkeypatch.setattr(tttpp, "QUEUE", 24)
    ad = Adapter(copy.deepcopy(model), stats, MethodConfig("ttt++", protocol="online", views=8, lr=1e-4), "cpu")
    a = images[:8].permute(0, 3, 1, 2).float() / 255
    b = images[8:16].permute(0, 3, 1, 2).float() / 255
    for _ in range(3):
        assert ad.update(a).status == "ok"
    assert ad.method.queue["features"].shape[0] == 8       # three steps on batch a: a's 8, from its last step
    assert ad.update(b).status == "ok" and ad.update(b).status == "ok"
    assert ad.method.queue["features"].shape[0] == 16
