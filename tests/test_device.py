"""Device handling that can be checked without a GPU: names, numerics switches, layouts, device moves."""
import pytest
import torch

from tttgui.augment import to_float
from tttgui.device import no_tf32, resolve_device, set_deterministic
from tttgui.errors import UserError


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("AUTO").type in ("cpu", "cuda")
    with pytest.raises(UserError, match="expected auto, cpu, cuda, cuda:N or mps"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:1"):
            with pytest.raises(UserError, match="no CUDA GPU is available"):
                resolve_device(name)
    if not torch.backends.mps.is_available():
        with pytest.raises(UserError, match="'mps' requested but"):
            resolve_device("mps")


def test_no_tf32_is_scoped_and_deterministic_sets_everything():
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
           torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
           torch.are_deterministic_algorithms_enabled())
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        with no_tf32():
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        info = set_deterministic(3)
        assert info["deterministic"] and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic,
         torch.backends.cudnn.benchmark) = old[:4]
        torch.use_deterministic_algorithms(old[4])


def test_inputs_reach_the_model_contiguous():
    x = to_float(torch.zeros(2, 8, 8, 3, dtype=torch.uint8))
    assert x.shape == (2, 3, 8, 8) and x.is_contiguous()


def test_swa_resume_puts_the_running_mean_on_the_model_device(tmp_path):
    from test_training import _swa_config, _Recording

    with pytest.raises(KeyboardInterrupt):
        _Recording(_swa_config(tmp_path, "b.pt"), stop_after=2).fit()
    trainer = _Recording(_swa_config(tmp_path, "b.pt"))
    trainer.device = torch.device("meta")       # stands in for CUDA: anything not the CPU
    assert trainer.load_state()
    assert {v.device.type for v in trainer.swa.values()} == {"meta"}


def test_views_need_no_host_round_trip_and_crop_flip_one_copy(monkeypatch):
    """On a GPU every .item()/.cpu()/.tolist() stalls the device: drawing views makes none, and crop_flip moves
    its draws in one copy (it made three); the draws themselves are unchanged (same generator order)."""
    from tttgui.augment import crop_flip, random_rotations, rotate, simclr_views

    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    calls = []
    for name in ("to", "cpu", "item", "tolist"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, (lambda n, r: lambda t, *a, **k: calls.append(n) or r(t, *a, **k))(
            name, real))
    g = torch.Generator().manual_seed(1)
    crop_flip(x, g)
    assert calls == ["to"]
    calls.clear()
    simclr_views(x, g)
    rotate(x, random_rotations(16, g, "cpu"))
    assert not {"cpu", "item", "tolist"} & set(calls)


def test_eval_records_determinism_and_takes_a_memory_budget(tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    from tttgui.cli import main
    from tttgui.models import ModelSpec, build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model(ModelSpec(arch_args={"depth": 8, "width": 1, "norm": "gn"}))
    save_checkpoint(tmp_path / "m.pt", model, [f"c{i}" for i in range(10)], {}, {})
    (tmp_path / "d" / "c1").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(tmp_path / "d" / "c1" / f"{i}.png")
    base = ["eval", "--checkpoint", str(tmp_path / "m.pt"), "--data", str(tmp_path / "d"), "--corruptions", "none",
            "--methods", "ttt", "--steps", "1", "--views", "4", "--chunk", "3", "--device", "cpu", "--no-progress"]
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic,
           torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled())
    try:
        assert main(base + ["--out", str(tmp_path / "a"), "--deterministic", "--memory-budget", "0.5"]) == 0
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic,
         torch.backends.cudnn.benchmark) = old[:4]
        torch.use_deterministic_algorithms(old[4])
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["deterministic"] is True and run["tf32"] is False
    assert main(base + ["--out", str(tmp_path / "b")]) == 0    # a tiny budget changes chunks, never results
    a = (tmp_path / "a" / "images.csv").read_text().splitlines()
    b = (tmp_path / "b" / "images.csv").read_text().splitlines()
    col = a[0].split(",").index("prediction_after")
    assert [r.split(",")[col] for r in a[1:]] == [r.split(",")[col] for r in b[1:]]
    assert main(base + ["--out", str(tmp_path / "c"), "--memory-budget", "-1"]) == 2
    assert "--memory-budget -1.0 is invalid" in capsys.readouterr().err
