"""The shipped checkpoints and model cards (resources/*.pt, *.md) travel in the wheel as tttgui.resources, so
an installed tttgui finds them (tttgui.models.default_checkpoint_path); pyproject.toml cannot add a package
that lives outside the package folder to those it finds."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["tttgui*"]) + ["tttgui.resources"],
      package_dir={"tttgui.resources": "resources"},
      package_data={"tttgui": ["py.typed"], "tttgui.resources": ["*.pt", "*.md"]})
