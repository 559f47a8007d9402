"""Tent as published on BatchNorm (batch statistics, outputs from before the step) and named for what it is on
GroupNorm."""
import copy

import torch

from tttgui.methods import Adapter, MethodConfig, display_name, get_method
from tttgui.models import ModelSpec, build_model

from test_methods import tiny_model


def bn_model():
    torch.manual_seed(0)
    spec = ModelSpec(arch_args={"depth": 8, "width": 1, "norm": "bn"}, input_size=16)
    model = build_model(spec).eval()
    with torch.no_grad():   # running statistics unlike any test batch, as after training on another domain
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.fill_(0.5)
                m.running_var.fill_(4.0)
    return model


def batch(seed, n=8):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_online_tent_on_batchnorm_predicts_with_batch_statistics_from_before_the_step():
    model = bn_model()
    source = copy.deepcopy(model)
    running = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    ad = Adapter(model, {}, MethodConfig("tent", protocol="online", lr=0.05), "cpu")
    assert ad.recipe.outputs == "before"
    x1, x2 = batch(1), batch(2)
    assert ad.update(x1).status == "ok"
    with torch.no_grad():
        published = source.train()(x1)        # the source weights, BN on the batch: official Tent's output
        eval_mode = source.eval()(x1)
    assert torch.allclose(ad.predict(x1), published, atol=1e-5)
    assert not torch.allclose(published, eval_mode, atol=1e-2)
    # the next batch: batch statistics again, with the weights after the first step, before the second
    stepped = copy.deepcopy(model)
    assert ad.update(x2).status == "ok"
    with torch.no_grad():
        assert torch.allclose(ad.predict(x2), stepped.train()(x2), atol=1e-5)
    for k, v in running.items():   # never moved
        assert torch.equal(model.state_dict()[k], v), k


def test_episodic_tent_predicts_after_the_step_with_batch_statistics():
    model = bn_model()
    ad = Adapter(model, {}, MethodConfig("tent", views=4), "cpu")
    assert ad.recipe.outputs == "after"
    x = batch(3, n=2)
    ad.update(x)
    with torch.no_grad():
        assert torch.allclose(ad.predict(x), copy.deepcopy(model).train()(x), atol=1e-5)


def test_tent_on_groupnorm_is_named_for_what_it_adapts():
    gn, _ = tiny_model()
    assert display_name("tent", gn) == "Tent (GN affine)"
    assert display_name("tent", bn_model()) == "Tent"
    assert display_name("ttt", gn) == "TTT" and get_method("tent").display_name() == "Tent"


def test_the_window_session_predicts_bn_tent_with_batch_statistics():
    """The explorer's per-image session shows what the published method predicts, not eval-mode output."""
    import numpy as np

    from tttgui.session import Session

    model = bn_model()
    s = Session(model, {}, MethodConfig("tent", views=4, lr=0.05), "cpu")
    image = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    first = s.set_image(image, label=1)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        published = copy.deepcopy(bn_model()).train()(x).softmax(-1)[0]
    assert torch.allclose(torch.as_tensor(first.probs, dtype=published.dtype), published, atol=1e-5)


def test_tent_with_sgd_takes_the_originals_sgd_settings():
    """conf.py: OPTIM.METHOD SGD runs with momentum 0.9 and Nesterov; another method's other optimizer runs plain."""
    from tttgui.methods import MethodConfig, get_method

    r = get_method("tent").resolve(MethodConfig("tent", protocol="online", optimizer="sgd"))
    assert (r.optimizer, r.lr, r.momentum, r.nesterov, r.weight_decay) == ("sgd", 1e-3, 0.9, True, 0.0)
    r = get_method("tent").resolve(MethodConfig("tent", protocol="online"))
    assert (r.optimizer, r.lr, r.momentum) == ("adam", 1e-3, 0.0)
    r = get_method("ttt").resolve(MethodConfig("ttt", optimizer="adam"))
    assert (r.optimizer, r.momentum, r.nesterov) == ("adam", 0.0, False)


def one_by_one_bn_model():
    """BatchNorm and a 4-px input: the last stage's maps are 1x1, so one image gives 1 value per channel."""
    torch.manual_seed(0)
    spec = ModelSpec(arch_args={"depth": 8, "width": 1, "norm": "bn"}, input_size=4)
    return build_model(spec).eval()


def test_tent_on_one_image_of_1x1_batchnorm_maps_is_one_line_naming_the_layer():
    import numpy as np
    import pytest

    from tttgui.errors import UserError
    from tttgui.session import Session

    model = one_by_one_bn_model()
    ad = Adapter(model, {}, MethodConfig("tent", views=4), "cpu")
    with pytest.raises(UserError, match=r"BatchNorm layer main\.layer3\.\S+ gets 1 value per channel .*expected a "
                                        r"batch of 2 or more images, or a model whose BatchNorm"):
        ad.predict(torch.rand(1, 3, 4, 4))
    assert not any(m.training for m in model.modules())         # modes restored, and the guard removed with them
    assert ad.predict(torch.rand(2, 3, 4, 4)).shape == (2, 10)
    image = (np.random.default_rng(0).random((4, 4, 3)) * 255).astype(np.uint8)
    with pytest.raises(UserError, match="1 value per channel"):   # the window's session: its one line, no torch text
        Session(model, {}, MethodConfig("tent", views=4), "cpu").set_image(image, label=1)


def test_evaluation_refuses_tent_batches_of_one_on_1x1_batchnorm_maps_before_any_work():
    import numpy as np
    import pytest

    from tttgui.errors import UserError
    from tttgui.evaluation import EvalConfig, evaluate

    model = one_by_one_bn_model()
    x = np.random.default_rng(0).integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    labels, idx = np.zeros(6, int), np.arange(6)

    def run(protocol, batch_size=None):
        cfg = EvalConfig(methods=("tent",), settings=MethodConfig(protocol=protocol, views=4), batch_size=batch_size)
        return evaluate(model, {}, x, labels, idx, cfg, "cpu")
    with pytest.raises(UserError, match=r"episodic protocol predicts 1 image at a time, so layer main\.layer3\.\S+ "
                                        r"gets 1 value per channel; expected --protocol online"):
        run("episodic")
    with pytest.raises(UserError, match="6 images in batches of 5 leave a last batch of 1"):
        run("online", 5)
    assert len(run("online", 4).images) == 6     # batches of 4 and 2: it runs
