"""`tttgui train --rotation expand|random`: the TTT code trains on all four rotations of each image."""
import torch
import torch.nn.functional as F

from tttgui.augment import crop_flip, random_rotations, rotate
from tttgui.cli import main
from tttgui.training import TrainConfig, Trainer, rotation_batch

from test_training import synthetic_folder


def test_expand_is_all_four_rotations_of_the_given_views():
    x = torch.rand(3, 3, 8, 8)
    views, labels = rotation_batch(x, torch.Generator().manual_seed(0), "expand", x)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    for k in range(4):
        assert torch.equal(views[3 * k:3 * k + 3], torch.rot90(x, k, dims=(2, 3)))


def test_random_draws_as_before_so_a_running_job_resumes_the_same():
    x = torch.rand(5, 3, 8, 8)
    views, labels = rotation_batch(x, torch.Generator().manual_seed(4), "random")
    g = torch.Generator().manual_seed(4)
    r = random_rotations(5, g, x.device)                 # the order the training loop always drew in
    assert torch.equal(labels, r) and torch.equal(views, rotate(crop_flip(x, g), r))
    assert TrainConfig(data="", out="").rotation == "random"


def test_expand_joint_loss_is_ce_plus_the_mean_over_four_rotations_of_the_same_crops(tmp_path):
    data = synthetic_folder(tmp_path / "data", per_class=4)
    cfg = TrainConfig(data=str(data), out=str(tmp_path / "m.pt"), ssl_epochs=0, epochs=1, batch_size=8,
                      stats_images=8, progress=False, rotation="expand")
    trainer = Trainer(cfg, log=lambda s: None)
    model = trainer.model.eval()
    x = trainer.x_lab[:4].permute(0, 3, 1, 2).float() / 255
    y = trainer.y_lab[:4]
    trainer.gen.manual_seed(7)
    with torch.no_grad():
        loss = trainer.joint_loss(x, y, {})
        xa = crop_flip(x, torch.Generator().manual_seed(7))
        r = torch.arange(4).repeat_interleave(4)
        want = F.cross_entropy(model(xa), y) + F.cross_entropy(
            model.rotation_logits(rotate(xa.repeat(4, 1, 1, 1), r)), r)
    assert torch.allclose(loss, want, atol=1e-5)


def test_model_card_says_which(tmp_path, capsys):
    data = synthetic_folder(tmp_path / "data", per_class=4)
    out = tmp_path / "m.pt"
    assert main(["train", "--labeled", str(data), "--out", str(out), "--ssl-epochs", "0", "--epochs", "1",
                 "--batch-size", "8", "--stats-images", "8", "--rotation", "expand", "--no-progress"]) == 0
    card = out.with_suffix(".md").read_text()
    assert "- Rotation task: all four rotations of each crop+flip image" in card
