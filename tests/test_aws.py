"""Han et al. 2025: the prototype classifier and AWS's losses, pinned on hand-computable batches."""
import math

import pytest
import torch
import torch.nn.functional as F

from tttgui.errors import UserError
from tttgui.methods import Adapter, MethodConfig, display_name, method_names
from tttgui.methods.aws import (AWS, contrastive, distillation, mutual_information, mutual_learning,
                                pair_weights)
from tttgui.models import ModelSpec, build_model
from tttgui.prototypes import class_prototypes, prototype_model


def _ranked(orders):
    """Logits whose class ranking per row is the given order (first = top-1)."""
    out = torch.zeros(len(orders), 10)
    for i, order in enumerate(orders):
        for rank, c in enumerate(order):
            out[i, c] = 10.0 - rank
    return out


def test_pair_weights_top1_agree_top5_disjoint():
    a = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    b = [0, 9, 8, 7, 6, 5, 4, 3, 2, 1]           # same top-1 as a
    c = [5, 6, 7, 8, 9, 0, 1, 2, 3, 4]           # top-5 disjoint from a's
    d = [4, 5, 6, 7, 8, 0, 1, 2, 3, 9]           # neither: top-1 differs, top-5 overlaps a's
    w = pair_weights(_ranked([a, b, c, d]))
    assert w.tolist() == [[0, 1, -1, 0], [1, 0, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 0]]


def test_contrastive_matches_the_equation():
    torch.manual_seed(0)
    f = torch.randn(4, 3)
    logits = _ranked([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [0, 9, 8, 7, 6, 5, 4, 3, 2, 1],
                      [5, 6, 7, 8, 9, 0, 1, 2, 3, 4], [4, 5, 6, 7, 8, 0, 1, 2, 3, 9]])
    w = pair_weights(logits)
    z = F.normalize(f, dim=1)
    total = 0.0
    for i in range(4):
        others = [j for j in range(4) if j != i]
        denom = sum(math.exp(float(z[i] @ z[k])) for k in others)
        norm = max(sum(abs(float(w[i, j])) for j in others), 1.0)
        total += -sum(float(w[i, j]) * math.log(math.exp(float(z[i] @ z[j])) / denom) for j in others) / norm
    assert contrastive(f, logits).item() == pytest.approx(total, abs=1e-6)      # summed over i, as printed
    assert contrastive(f, logits, reduction="mean").item() == pytest.approx(total / 4, abs=1e-6)   # aws-mean


def test_aws_mean_is_aws_with_the_contrastive_term_averaged():
    """aws-mean differs from aws only in L_cl's 1/B: same recipe, same distillation and mutual learning."""
    model, images = _cosine_model()
    assert "aws-mean" in method_names("continual") and "aws-mean" not in method_names("episodic")
    assert display_name("aws-mean", model) == "AWS, L_cl batch mean (prototype classifier)"
    x = images.permute(0, 3, 1, 2).float() / 255
    sums, means = (Adapter(model, {}, MethodConfig(m, protocol="continual"), "cpu") for m in ("aws", "aws-mean"))
    assert sums.recipe.lr == means.recipe.lr == pytest.approx(2.5e-4)
    batch = sums.method.draw(x, torch.Generator().manual_seed(0))
    with torch.no_grad():
        f_t, f_s = model.features(x), sums.method.ssl_features(x)
        l_t, l_s = model.fc(f_t), sums.method.classifier_ssl(f_s)
        gap = sums.method.loss(model, batch) - means.method.loss(model, batch)
        cl = contrastive(f_t, l_t)
    assert gap.item() == pytest.approx(cl.item() * (1 - 1 / len(x)), rel=1e-4) and cl.item() > 0


def test_distillation_and_mutual_information_values():
    e = torch.eye(2)
    assert distillation(e, e).item() == pytest.approx(0.0)
    assert distillation(e, e.flip(0)).item() == pytest.approx(2.0)       # orthogonal unit vectors
    onehot = torch.tensor([[1.0, 0], [0, 1]])
    assert mutual_information(onehot, onehot).item() == pytest.approx(math.log(2), abs=1e-6)
    uniform = torch.full((2, 2), 0.5)
    assert mutual_information(uniform, uniform).item() == pytest.approx(0.0, abs=1e-6)
    # mutual learning: CE of p_ssl against the target's hard labels, minus I(p_t; p_ssl)
    lt, ls = torch.tensor([[3.0, 0], [0, 3.0]]), torch.tensor([[1.0, 0], [1.0, 0]])
    ce = F.cross_entropy(ls, torch.tensor([0, 1])).item()
    mi = mutual_information(lt.softmax(1), ls.softmax(1)).item()
    assert mutual_learning(lt, ls).item() == pytest.approx(ce - mi, abs=1e-6)


def test_prototypes_are_class_means_of_normalised_features():
    f = torch.tensor([[3.0, 0], [0, 2.0], [1.0, 1.0]])
    protos = class_prototypes(f, torch.tensor([0, 0, 1]), 2)
    assert torch.allclose(protos[0], torch.tensor([0.5, 0.5]))
    assert torch.allclose(protos[1], torch.tensor([1.0, 1.0]) / math.sqrt(2))
    with pytest.raises(UserError, match=r"class\(es\) \[2\]"):
        class_prototypes(f, torch.tensor([0, 0, 1]), 3)


def _cosine_model(n_classes=4):
    torch.manual_seed(0)
    model = build_model(ModelSpec(num_classes=n_classes, heads=(), arch_args={"depth": 8, "width": 1, "norm": "gn"}))
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (16, 32, 32, 3), dtype=torch.uint8, generator=g)
    return prototype_model(model, images, torch.arange(16) % n_classes, "cpu"), images


def test_prototype_model_predicts_scaled_cosines():
    model, images = _cosine_model()
    x = images[:3].permute(0, 3, 1, 2).float() / 255
    f = model.features(x)
    expected = 10.0 * F.normalize(f, dim=1) @ F.normalize(model.fc.weight, dim=1).t()
    assert model.spec.classifier == "cosine" and torch.allclose(model(x), expected, atol=1e-5)


def test_aws_recipe_step_and_what_adapts():
    model, images = _cosine_model()
    assert "aws" in method_names("online") and "aws" not in method_names("episodic")
    assert display_name("aws", model) == "AWS (prototype classifier)" and display_name("aws") == "AWS"
    linear = build_model(ModelSpec(num_classes=3, heads=(), arch_args={"depth": 8, "width": 1, "norm": "gn"}))
    assert display_name("aws", linear) == "AWS (linear classifier)"
    with pytest.raises(UserError, match="expected --protocol online"):
        Adapter(model, {}, MethodConfig("aws", protocol="episodic"), "cpu")
    ad = Adapter(model, {}, MethodConfig("aws", protocol="online"), "cpu")
    r = ad.recipe
    assert (r.lr, r.optimizer, r.momentum, r.steps, r.outputs) == (pytest.approx(1e-3 * 16 / 64), "sgd", 0.9, 1,
                                                                   "before")
    method: AWS = ad.method
    frozen = {k: v.clone() for k, v in method.encoder_ssl.state_dict().items()}
    g_ssl, trunk = method.classifier_ssl.weight.detach().clone(), model.trunk.conv1.weight.detach().clone()
    x = images.permute(0, 3, 1, 2).float() / 255
    for _ in range(3):
        assert ad.update(x).status == "ok"
    assert all(torch.equal(v, method.encoder_ssl.state_dict()[k]) for k, v in frozen.items())
    assert not torch.equal(method.classifier_ssl.weight, g_ssl)
    assert not torch.equal(model.trunk.conv1.weight, trunk)
    ad.reset()        # a reset restores g_ssl too (it is among the adapted tensors)
    assert torch.equal(method.classifier_ssl.weight, g_ssl) and torch.equal(model.trunk.conv1.weight, trunk)


def test_aws_loss_weighs_its_three_terms_as_the_paper():
    torch.manual_seed(0)
    f_t, f_s = torch.randn(6, 5), torch.randn(6, 5)
    lt, ls = torch.randn(6, 10), torch.randn(6, 10)
    from tttgui.methods.aws import aws_loss
    expected = contrastive(f_t, lt) + 0.01 * distillation(f_t, f_s) + 0.4 * mutual_learning(lt, ls)
    assert aws_loss(f_t, lt, f_s, ls).item() == pytest.approx(expected.item(), abs=1e-6)
    # L_cl sums over the batch (Eq. 3 as printed): two copies of a batch give twice the loss of one
    both = torch.cat([f_t, f_t + 1e-4 * torch.randn(6, 5)])
    assert contrastive(both, torch.cat([lt, lt])).item() > 1.5 * contrastive(f_t, lt).item()


def test_mutual_learning_routes_its_gradients():
    """The cross-entropy trains g_ssl only (the target's hard labels are detached); the mutual information
    trains the target only (p_ssl detached)."""
    lt = torch.randn(8, 4, requires_grad=True)
    ls = torch.randn(8, 4, requires_grad=True)
    ce = F.cross_entropy(ls, lt.detach().argmax(1))
    g_t_ce = torch.autograd.grad(mutual_learning(lt, ls) + 0 * ce, lt, retain_graph=True)[0]
    mi_only = -mutual_information(lt.softmax(1), ls.detach().softmax(1))
    assert torch.allclose(g_t_ce, torch.autograd.grad(mi_only, lt)[0], atol=1e-6)   # no CE gradient reaches p_t
    g_s = torch.autograd.grad(mutual_learning(lt, ls), ls)[0]
    assert torch.allclose(g_s, torch.autograd.grad(ce, ls)[0], atol=1e-6)            # no MI gradient reaches p_ssl


def test_aws_refuses_a_step_without_pairs_and_a_batch_without_its_lr(tmp_path):
    from tttgui.evaluation import EvalConfig, check_config

    model, images = _cosine_model()
    ad = Adapter(model, {}, MethodConfig("aws", protocol="online"), "cpu")
    one = images[:1].permute(0, 3, 1, 2).float() / 255
    with pytest.raises(UserError, match=r"aws learns from the pairs of a batch and this step has 1 image\(s\); "
                                        r"expected 2 or more"):
        ad.update(one)
    cfg = lambda **kw: EvalConfig(corruptions=("gaussian_noise",), severities=(5,), methods=("aws",),  # noqa: E731
                                  settings=MethodConfig("aws", protocol="online", lr=kw.pop("lr", None)), **kw)
    check_config(cfg(), model)                          # online without --batch-size: its own 16
    with pytest.raises(UserError, match="online gives it 1 image"):
        check_config(cfg(batch_size=1), model)
    with pytest.raises(UserError, match=r"expected --lr 0.000125 .* with --batch-size 8"):
        check_config(cfg(batch_size=8), model)
    check_config(cfg(batch_size=16), model)            # the paper's batch: its lr, 1e-3 x 16 / 64
    check_config(cfg(batch_size=8, lr=1.25e-4), model)
