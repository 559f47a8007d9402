"""benchmarks/results_ssl.py: Han et al.'s continual setting on a self-supervised checkpoint, on a tiny model."""
import numpy as np
import pytest
import torch

from tests.conftest import load_benchmark
from tests.test_results_script import CLASSES, load_script as load_results, setup as data_setup  # noqa: F401
from tttgui.models import ModelSpec, build_model, save_checkpoint
from tttgui.stats import source_statistics


def load_script():
    return load_benchmark("results_ssl")


@pytest.fixture
def setup(data_setup):  # noqa: F811
    """results.py's tiny data folder, plus a prototype (cosine) classifier with source statistics."""
    torch.manual_seed(0)
    spec = ModelSpec(num_classes=3, heads=(), arch_args={"depth": 8, "width": 1, "norm": "gn"}, classifier="cosine")
    model = build_model(spec).eval()
    rng = np.random.default_rng(0)
    stats = source_statistics(model, torch.from_numpy(rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)), "cpu")
    save_checkpoint(data_setup / "protos.pt", model, CLASSES, stats, {})
    return data_setup


def test_a_method_that_cannot_run_says_why(setup):
    results = load_script()
    torch.manual_seed(0)
    model = build_model(ModelSpec(num_classes=3, heads=(), arch_args={"depth": 8, "width": 1, "norm": "gn"}))
    save_checkpoint(setup / "nostats.pt", model, CLASSES, {}, {})      # no source statistics: TTT++ cannot align
    assert results.main(["--data", str(setup / "data"), "--model", f"bare={setup / 'nostats.pt'}", "--methods",
                         "source,ttt++", "--work", str(setup / "work"), "--out", str(setup / "ssl.md"),
                         "--frost-dir", str(setup / "none"), "--images", "3", "--title", "Bare model"]) == 0
    page = (setup / "ssl.md").read_text()
    assert page.startswith("# Bare model\n")
    assert "| bare | TTT++ (align only, GN) | n/a |" in page
    assert "source feature mean and covariance" in page.split("Not run")[1]


def test_continual_rows_per_model_and_a_rerun_reads_them_back(setup, capsys):
    results = load_script()
    argv = ["--data", str(setup / "data"), "--model", f"SimCLR + prototypes={setup / 'protos.pt'}",
            "--methods", "source,tent,tent@8e-5,ttt++,aws", "--work", str(setup / "work"), "--out", str(setup / "ssl.md"),
            "--frost-dir", str(setup / "none")]
    assert results.main(argv) == 0
    page = (setup / "ssl.md").read_text()
    rows = {ln.split("|")[2].strip(): [c.strip() for c in ln.split("|")[3:-1]]
            for ln in page.splitlines() if ln.startswith("| SimCLR + prototypes |")}
    assert set(rows) == {"source (no adaptation)", "Tent (GN affine)", "Tent (GN affine) (lr 8e-05)",
                         "TTT++ (align only, GN)", "AWS (prototype classifier)"}
    for method in rows:
        assert len(rows[method]) == 18 and all(v != "pending" for v in rows[method][:17]), rows[method]
        assert 0 <= float(rows[method][15]) <= 100                     # mean-15
        assert 1 <= int(rows[method][16]) <= 3                         # classes in use (of 3)
    assert "DINO ViT-B/16 | 44.3 | 43.5 | 26.8" in page
    assert "Choices the paper leaves open (also in docs/results.md): L_cl sums over the batch" in page
    cells = sorted(p.name for p in (setup / "work").glob("*/cells/*.csv"))
    assert len(cells) == 75                                            # 15 corruptions x 5 rows
    assert len(list((setup / "work").glob("*-lr8e-05/cells/*.csv"))) == 15     # the lr variant's own store
    stamps = {p: p.stat().st_mtime_ns for p in (setup / "work").glob("*/cells/*.csv")}
    assert results.main(argv + ["--report-only"]) == 0
    assert (setup / "ssl.md").read_text().split("## Run")[0] == page.split("## Run")[0]
    assert results.main(argv + ["--report-only", "--images", "2"]) == 0    # not the images the cells hold
    assert "| SimCLR + prototypes | Tent (GN affine) | pending |" in (setup / "ssl.md").read_text()
    assert "images is 2 now but was 6" in capsys.readouterr().err
    assert results.main(argv) == 0                                     # resumed: nothing recomputed
    assert {p: p.stat().st_mtime_ns for p in (setup / "work").glob("*/cells/*.csv")} == stamps


def test_classes_in_use_counts_classes_with_a_share_of_the_predictions():
    from tttgui.results import classes_in_use

    collapsed = [6] * 990 + [1] * 9 + [-1]        # class 1 has 0.9 %: below the 1 % share; -1 (diverged) counts
    assert classes_in_use(collapsed) == 1
    assert classes_in_use([6] * 98 + [1, 2]) == 3
    assert classes_in_use(c % 10 for c in range(1000)) == 10
    assert classes_in_use([]) is None


def test_results_page_shows_the_ssl_section(tmp_path):
    results = load_results()
    pending = "\n".join(results.ssl_section(tmp_path / "results_ssl.md"))
    assert "Pending: `python benchmarks/results_ssl.py" in pending
    assert "self-pairs are left out of the weights" in pending        # issue 18: the open choices are on docs/results.md too
    (tmp_path / "results_ssl.md").write_text("# x\n\n## Measured\n\n| model | method |\n|---|---|\n| m | aws |\n\n## Run\n")
    text = "\n".join(results.ssl_section(tmp_path / "results_ssl.md"))
    assert "| m | aws |" in text and "## Run" not in text
    # the page results_ssl.py writes: a paragraph on the columns between the heading and the table
    ssl = load_script()
    args = ssl.parse_args(["--model", "m=x.pt"])
    page = ssl.render({"m": {"names": {"aws": "AWS"}, "skipped": {}, "rows": {}, "sweeps": {}, "chosen": {},
                             "sha": "0" * 64, "path": "x.pt"}}, args, 10, 4)
    (tmp_path / "results_ssl.md").write_text(page)
    text = "\n".join(results.ssl_section(tmp_path / "results_ssl.md"))
    assert "| m | AWS | pending |" in text and "classes in use" in text and "## Run" not in text


def test_a_model_can_have_its_own_method_list(setup):
    """The paper's AWS-FS row is no adaptation and AWS on the 30-per-class prototypes: --model-methods."""
    results = load_script()
    argv = ["--data", str(setup / "data"), "--model", f"all={setup / 'protos.pt'}", "--model",
            f"few={setup / 'protos.pt'}", "--methods", "source,tent", "--model-methods", "few=source,aws",
            "--work", str(setup / "work"), "--out", str(setup / "ssl.md"), "--frost-dir", str(setup / "none"),
            "--images", "3"]
    assert results.main(argv) == 0
    page = (setup / "ssl.md").read_text()
    rows = {tuple(c.strip() for c in ln.split("|")[1:3]) for ln in page.splitlines() if ln.startswith("| all |")
            or ln.startswith("| few |")}
    assert rows == {("all", "source (no adaptation)"), ("all", "Tent (GN affine)"), ("few", "source (no adaptation)"),
                    ("few", "AWS (prototype classifier)")}
    assert "| DINO ViT-B/16 | 44.3 | 43.5 | 26.8 | 28.2 |" in page
    with pytest.raises(SystemExit, match="--model-methods 'nobody=aws'.*all, few"):
        results.main(argv + ["--model-methods", "nobody=aws"])


def test_heldout_streams_can_come_from_another_folder(setup):
    """--heldout-data: the held-out streams draw from another folder (the training set makes one as long as the
    test stream); their cells say so and live apart from the test-image sweeps."""
    import json
    import shutil

    results = load_script()
    shutil.copytree(setup / "data", setup / "train")
    argv = ["--data", str(setup / "data"), "--model", f"m={setup / 'protos.pt'}", "--methods", "source,tent@heldout",
            "--heldout-images", "4", "--heldout-data", str(setup / "train"), "--work", str(setup / "work"),
            "--out", str(setup / "ssl.md"), "--frost-dir", str(setup / "none")]
    assert results.main(argv) == 0
    sweeps = sorted((setup / "work").glob("*-heldout-*/cells/config.json"))
    assert len(sweeps) == 4 and all("-heldout-train-tent-lr" in str(p) for p in sweeps)
    assert json.loads(sweeps[0].read_text())["images_from"] == str(setup / "train")
    page = (setup / "ssl.md").read_text()
    assert f"4 `{setup / 'train'}` images each, seed 0: 16 images in all" in page
    assert "Tent (GN affine) (lr " in page and "held-out choice)" in page


def test_heldout_rows_pick_their_lr_on_the_four_heldout_corruptions(setup):
    """METHOD@heldout: a continual stream over speckle_noise, gaussian_blur, spatter, saturate per lr of the grid
    (the method's own lr x 1, 0.1, 0.01, 0.001); the lowest mean error picks the lr of the row on the 15."""
    results = load_script()
    argv = ["--data", str(setup / "data"), "--model", f"m={setup / 'protos.pt'}", "--methods",
            "source,tent,tent@heldout,aws@heldout", "--heldout-images", "4", "--work", str(setup / "work"),
            "--out", str(setup / "ssl.md"), "--frost-dir", str(setup / "none")]
    assert results.main(argv) == 0
    page = (setup / "ssl.md").read_text()
    work = setup / "work"
    sweeps = sorted(p.parent.parent.name.split("-heldout-")[1] for p in work.glob("*-heldout-*/cells/config.json"))
    assert sweeps == sorted(["aws-lr0.00025", "aws-lr2.5e-05", "aws-lr2.5e-06", "aws-lr2.5e-07",
                             "tent-lr0.001", "tent-lr0.0001", "tent-lr1e-05", "tent-lr1e-06"])
    for folder in work.glob("*-heldout-*"):
        assert sorted(p.name.split("-5-")[0] for p in folder.glob("cells/*.csv")) == \
            ["gaussian_blur", "saturate", "spatter", "speckle_noise"]
    section = page.split("## Learning rates chosen on held-out corruptions")[1].split("##")[0]
    line = next(ln for ln in section.splitlines() if ln.startswith("| m | AWS (prototype classifier) |"))
    errs = dict(item.split(": ") for item in line.split("|")[3].strip().split(", "))
    assert list(errs) == ["0.00025", "2.5e-05", "2.5e-06", "2.5e-07"]
    chosen = line.split("|")[4].strip()
    assert float(errs[chosen]) == min(map(float, errs.values()))
    rows = {ln.split("|")[2].strip(): [c.strip() for c in ln.split("|")[3:-1]]
            for ln in page.splitlines() if ln.startswith("| m |") and len(ln.split("|")) > 10}
    assert f"AWS (prototype classifier) (lr {chosen}, held-out choice)" in rows
    stream = [p for p in work.glob(f"*-aws-lr{chosen}/cells/*.csv") if "-heldout-" not in str(p)]
    assert len(stream) == 15                                           # its stream on the 15
    tent = next(k for k in rows if k.startswith("Tent (GN affine) (lr"))
    if "(lr 0.001," in tent:        # the default lr won: the row is the plain Tent stream, not run twice
        assert rows[tent][:16] == rows["Tent (GN affine)"][:16]
        assert [p for p in work.glob("*-tent-lr0.001") if "-heldout-" not in p.name] == []
    stamps = {p: p.stat().st_mtime_ns for p in work.glob("*/cells/*.csv")}
    assert results.main(argv) == 0                                     # resumed: nothing recomputed
    assert {p: p.stat().st_mtime_ns for p in work.glob("*/cells/*.csv")} == stamps
    assert results.main(argv + ["--report-only"]) == 0
    assert (setup / "ssl.md").read_text().split("## Run")[0] == page.split("## Run")[0]
    with pytest.raises(SystemExit, match="source has no learning rate"):
        results.main(argv[:4] + ["--methods", "source@heldout"] + argv[6:])


def test_corrupted_images_made_once_are_the_bytes_evaluate_makes(setup):
    """The benchmark keeps each corruption's images for all its streams; the rows match evaluate's own."""
    from tttgui.data import open_dataset
    from tttgui.evaluation import EvalConfig, evaluate
    from tttgui.methods import MethodConfig
    from tttgui.models import load_checkpoint

    results = load_script()
    ds = open_dataset(str(setup / "data"))
    idx = np.arange(len(ds))
    x, y = ds.arrays(idx)
    model, payload = load_checkpoint(setup / "protos.pt", "cpu")
    cfg = EvalConfig(corruptions=("gaussian_noise", "spatter"), severities=(5,), methods=("aws",),
                     settings=MethodConfig(protocol="continual", seed=3))
    images = results.Images(x, y, idx, 3, None)
    a = evaluate(model, payload["source_stats"], x, y, idx, cfg, "cpu", shifted=images.shifted)
    b = evaluate(model, payload["source_stats"], x, y, idx, cfg, "cpu")
    assert [(r.corruption, r.prediction_after, r.loss_first) for r in a.images] == \
        [(r.corruption, r.prediction_after, r.loss_first) for r in b.images]
    assert set(images.made) == {("gaussian_noise", 5), ("spatter", 5)}
