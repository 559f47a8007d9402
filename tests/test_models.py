"""Models: the TTT paper's ResNet-26, heads, timm backbones, and the checkpoint format."""
import os

import pytest
import torch

from tttgui.errors import UserError
from tttgui.models import ModelSpec, build_model, load_checkpoint, save_checkpoint
from tttgui.models.factory import timm_spec


def test_parameter_counts_match_the_paper_code():
    model = build_model(ModelSpec(heads=("rotation",)))
    assert model.classifier_param_count() == 366_938
    assert model.rotation_param_count() == 277_828


def test_output_shapes_of_every_head():
    model = build_model(ModelSpec(heads=("rotation", "contrastive"), proj_dim=32)).eval()
    x = torch.rand(3, 3, 32, 32)
    assert model(x).shape == (3, 10)
    assert model.rotation_logits(x).shape == (3, 4)
    z = model.project(model.features(x))
    assert z.shape == (3, 32)
    assert torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)
    assert model.shared(x).shape == (3, 32, 16, 16)
    assert len(model.norm_layers()) == 8 * 2 + 8 + 1  # 2 per block in trunk + layer3, plus the final norm


def test_rotation_head_has_its_own_layer3_copy():
    model = build_model(ModelSpec())
    main = {id(p) for p in model.main.parameters()}
    assert not main & {id(p) for p in model.parameter_groups()["rotation"]}


def test_missing_head_is_a_clear_error():
    model = build_model(ModelSpec(heads=()))
    with pytest.raises(UserError, match="no rotation head"):
        model.rotation_logits(torch.rand(1, 3, 32, 32))


def test_save_load_gives_identical_outputs(tmp_path):
    model = build_model(ModelSpec(heads=("rotation", "contrastive"))).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, [str(i) for i in range(10)],
                           {"features": {"mean": torch.zeros(64)}}, {"clean_error": 12.5})
    loaded, payload = load_checkpoint(path)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
        assert torch.equal(model.rotation_logits(x), loaded.rotation_logits(x))
        assert torch.equal(model.project(model.features(x)), loaded.project(loaded.features(x)))
    assert payload["meta"]["clean_error"] == 12.5
    assert payload["spec"]["heads"] == ["rotation", "contrastive"]


@pytest.fixture
def saved(tmp_path):
    return save_checkpoint(tmp_path / "ok.pt", build_model(ModelSpec()), [str(i) for i in range(10)])


def test_truncated_checkpoint(tmp_path, saved):
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(saved.read_bytes()[: os.path.getsize(saved) // 2])
    with pytest.raises(UserError, match=r"trunc\.pt is truncated \(its zip archive has no end record\)") as err:
        load_checkpoint(bad)
    assert "\n" not in str(err.value)


def test_not_a_checkpoint(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(UserError, match="not a tttgui checkpoint"):
        load_checkpoint(other)
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_mismatched_architecture_and_missing_keys(tmp_path, saved):
    payload = torch.load(saved, weights_only=True)
    payload["spec"]["arch_args"] = {"depth": 26, "width": 2, "norm": "gn"}
    torch.save(payload, tmp_path / "wide.pt")
    with pytest.raises(UserError, match="does not match architecture resnet26: .*shape mismatch"):
        load_checkpoint(tmp_path / "wide.pt")
    payload = torch.load(saved, weights_only=True)
    del payload["state_dict"]["fc.weight"]
    torch.save(payload, tmp_path / "partial.pt")
    with pytest.raises(UserError, match="1 missing keys .e.g. fc.weight"):
        load_checkpoint(tmp_path / "partial.pt")


def test_timm_backbone_gets_the_same_heads(tmp_path):
    spec = timm_spec("resnet10t", heads=("rotation", "contrastive"), pretrained=False)
    model = build_model(spec).eval()
    x = torch.rand(2, 3, 64, 64)
    assert model(x).shape == (2, 10)
    assert model.rotation_logits(x).shape == (2, 4)
    assert model.project(model.features(x)).shape == (2, 128)
    path = save_checkpoint(tmp_path / "timm.pt", model, [str(i) for i in range(10)])
    loaded, _ = load_checkpoint(path)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_timm_weights_errors_name_the_file(tmp_path, monkeypatch):
    import huggingface_hub.constants

    # as on a machine without network; the env variable alone is read only when huggingface_hub is imported
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    missing = tmp_path / "vit.safetensors"
    with pytest.raises(UserError, match="vit.safetensors not found"):
        build_model(timm_spec("resnet10t", weights=str(missing)))
    with pytest.raises(UserError, match="pass a local weights file"):
        build_model(timm_spec("resnet10t", pretrained=True))
    with pytest.raises(UserError, match="unknown timm model"):
        timm_spec("no_such_net_123")
    text = tmp_path / "notes.pth"                       # torch's own text here is a paragraph on weights_only
    text.write_text("not weights\n")
    with pytest.raises(UserError, match=r"notes.pth is not a zip/pickle file .*; expected a .safetensors or .pth"):
        build_model(timm_spec("resnet10t", weights=str(text)))
    bad = tmp_path / "w.safetensors"
    bad.write_text("garbage")
    with pytest.raises(UserError, match=r"cannot read weights file .*w.safetensors \(.*\); expected"):
        build_model(timm_spec("resnet10t", weights=str(bad)))


def test_unknown_timm_name_suggests_the_names_it_starts_like():
    """A typo at the end (vit_tinyy) names vit_tiny_*, which difflib's ratio alone ranks below gcvit_tiny."""
    with pytest.raises(UserError) as err:
        timm_spec("vit_tinyy")
    text = str(err.value)
    assert "\n" not in text and "e.g. vit_tiny_patch16_224" in text, text
    with pytest.raises(UserError, match=r"e\.g\. convnext_tiny"):   # difflib's own still come when no prefix does
        timm_spec("convnxt_tiny")
