"""ResNet-26 of the TTT paper (Sun et al. 2020, ttt_cifar_release `ResNetCifar`), Y-split after layer2.

Pre-activation basic blocks, widths 16/32/64, GroupNorm(8) by default, parameter-free down-sampling shortcut
(2x2 average pool + zero channels). Parameter counts: classifier network 366,938; rotation head 277,828.
"""
from __future__ import annotations

import copy


from torch import nn
import torch.nn.functional as F


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "gn":
        return nn.GroupNorm(8, channels)
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {kind!r}; expected 'gn' or 'bn'")


class ZeroPadShortcut(nn.Module):
    """Average-pool 2x2 and zero-pad the new channels: the paper's parameter-free shortcut."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.extra = extra_channels

    def forward(self, x):
        x = F.avg_pool2d(x, 2)
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.bn1 = make_norm(norm, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = make_norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = ZeroPadShortcut(cout - cin) if (stride != 1 or cin != cout) else nn.Identity()

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


def make_stage(cin: int, cout: int, blocks: int, stride: int, norm: str) -> nn.Sequential:
    layers = [PreActBlock(cin, cout, stride, norm)]
    layers += [PreActBlock(cout, cout, 1, norm) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class PooledHead(nn.Module):
    """layer3 (or a copy) -> norm -> ReLU -> global average pool: the pooled feature of one branch."""

    def __init__(self, stage: nn.Sequential, channels: int, norm: str):
        super().__init__()
        self.layer3 = stage
        self.bn = make_norm(norm, channels)

    def forward(self, h):
        h = F.relu(self.bn(self.layer3(h)))
        return h.mean(dim=(2, 3))


class ResNet26Trunk(nn.Module):
    """conv1 + layer1 + layer2: the part shared by the classifier and the rotation head."""

    def __init__(self, depth: int = 26, width: int = 1, norm: str = "gn"):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        c1, c2 = 16 * width, 32 * width
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.layer1 = make_stage(16, c1, n, 1, norm)
        self.layer2 = make_stage(c1, c2, n, 2, norm)

    def forward(self, x):
        return self.layer2(self.layer1(self.conv1(x)))


def build_resnet26(depth: int = 26, width: int = 1, norm: str = "gn"):
    """Return (trunk, classifier branch, rotation branch body, pooled feature dim)."""
    n = (depth - 2) // 6
    trunk = ResNet26Trunk(depth, width, norm)
    c2, c3 = 32 * width, 64 * width
    main = PooledHead(make_stage(c2, c3, n, 2, norm), c3, norm)
    rot = copy.deepcopy(main)
    return trunk, main, rot, c3


def init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return None


__all__ = ["build_resnet26", "init_weights", "PreActBlock", "ZeroPadShortcut"]
