"""A built wheel (what `pip install .` installs) carries the shipped checkpoints and model cards, and an installed
tttgui finds them (issue 19 item 6). Built from a copy of the sources in a temp folder: no network, no build files
left in the checkout."""
import shutil
import subprocess
import sys
import zipfile

from tests.conftest import ROOT


def test_wheel_carries_the_shipped_models_and_finds_them(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "tttgui", src / "tttgui", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "resources", src / "resources", ignore=shutil.ignore_patterns("training"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("tttgui-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(p.name for p in (ROOT / "resources").iterdir() if p.suffix in (".pt", ".md"))
    assert shipped and sorted(n.split("/")[-1] for n in names if n.startswith("tttgui/resources/")) == shipped
    assert not any("training" in n and n.endswith(".pt") for n in names)   # not the resumable training state

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    found = subprocess.run([sys.executable, "-c", "from tttgui.models import default_checkpoint_path as d; "
                            "print(d())"], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                           env={"PYTHONPATH": str(site), "PATH": ""})
    assert found.returncode == 0, found.stderr
    path = found.stdout.strip()
    assert path.startswith(str(site)) and path.endswith("resnet26_gn_cifar10.pt"), path
