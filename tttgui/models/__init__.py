"""Models: the TTT paper's ResNet-26 and timm backbones, with self-supervised heads."""
from tttgui.models.model import HEADS, ModelSpec, TTTModel
from tttgui.models.factory import build_model
from tttgui.models.checkpoint import load_checkpoint, save_checkpoint, default_checkpoint_path

__all__ = ["HEADS", "ModelSpec", "TTTModel", "build_model", "load_checkpoint", "save_checkpoint",
           "default_checkpoint_path"]
