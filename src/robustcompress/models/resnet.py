"""CIFAR-style ResNets (He et al. 2016, the 3×3-stem variants): ResNet-18, the
6n + 2 family (ResNet-20, -32, -56) and a VGG-like network."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robustcompress.models.layers import maybe_normalize
from robustcompress.models.registry import register_model

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


NORMS = ("batch", "none")
"""``norm`` of the ResNets: batch norm after every convolution (He et al.), or none with
the Fixup initialisation (Zhang et al. 2019) and without its scalar layers."""


def _norm(planes: int, norm: str) -> nn.Module:
    return nn.BatchNorm2d(planes) if norm == "batch" else nn.Identity()


def _conv(in_planes: int, planes: int, kernel: int, stride: int, norm: str) -> nn.Conv2d:
    """A convolution; without batch norm it keeps its bias (batch norm's shift)."""
    return nn.Conv2d(in_planes, planes, kernel, stride, kernel // 2, bias=norm != "batch")


class BasicBlock(nn.Module):
    """Two 3×3 convolutions (each with batch norm unless ``norm='none'``) and an
    identity or 1×1 shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int, norm: str = "batch") -> None:
        super().__init__()
        self.conv1 = _conv(in_planes, planes, 3, stride, norm)
        self.bn1 = _norm(planes, norm)
        self.conv2 = _conv(planes, planes, 3, 1, norm)
        self.bn2 = _norm(planes, norm)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                _conv(in_planes, planes, 1, stride, norm), _norm(planes, norm)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with :class:`BasicBlock` stages for 32×32 inputs.

    ``norm='none'`` drops batch norm and initialises as Fixup does (Zhang et al. 2019,
    §3): He initialisation everywhere (fan-in: a one-channel stem would start with
    a third of the signal under fan-out), the first convolution of each of the L residual
    branches scaled by L^(-1/2) (m = 2 layers per branch), the last convolution of each
    branch and the classifier set to zero; Fixup's scalar multipliers and biases are
    left out (as the ICLR 2020 submission does, App. D.3, so that layer spectra are the
    operators' own) and every convolution keeps an ordinary bias instead.
    """

    def __init__(
        self,
        blocks: Sequence[int],
        width: int,
        num_classes: int,
        in_channels: int,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r} (choose one of: {', '.join(NORMS)})")
        self.normalize = maybe_normalize(mean, std)
        self.conv1 = _conv(in_channels, width, 3, 1, norm)
        self.bn1 = _norm(width, norm)
        stages: list[BasicBlock] = []
        in_planes = width
        for i, n in enumerate(blocks):
            planes = width * 2**i
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                stages.append(BasicBlock(in_planes, planes, stride, norm))
                in_planes = planes
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        if norm == "none":
            self._fixup(stages)

    def _fixup(self, blocks: Sequence[BasicBlock]) -> None:
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        for conv in convs:
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
            assert conv.bias is not None
            nn.init.zeros_(conv.bias)
        with torch.no_grad():
            for block in blocks:
                block.conv1.weight.mul_(len(blocks) ** -0.5)
                block.conv2.weight.zero_()
            self.fc.weight.zero_()
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(self.normalize(x))))
        out = self.pool(self.layers(out)).flatten(1)
        return self.fc(out)


@register_model(
    "resnet18",
    input_shape=(3, 32, 32),
    default_dataset="cifar10",
    paper="He et al. 2016 (CIFAR variant)",
)
def resnet18(
    width: int = 64,
    num_classes: int = 10,
    in_channels: int = 3,
    mean: Sequence[float] | None = CIFAR10_MEAN,
    std: Sequence[float] | None = CIFAR10_STD,
) -> nn.Module:
    """ResNet-18 for CIFAR-10 (11.2 M parameters at width 64; normalisation inside)."""
    return ResNet((2, 2, 2, 2), width, num_classes, in_channels, mean, std)


@register_model(
    "resnet32",
    input_shape=(3, 32, 32),
    default_dataset="cifar10",
    paper="He et al. 2016, §4.2 (CIFAR ResNet, n = 5); Guo et al. 2018, Figure 2 g-h",
)
def resnet32(
    width: int = 16,
    num_classes: int = 10,
    in_channels: int = 3,
    mean: Sequence[float] | None = CIFAR10_MEAN,
    std: Sequence[float] | None = CIFAR10_STD,
) -> nn.Module:
    """ResNet-32 for CIFAR-10: a 3×3 stem, three stages of five basic blocks (16, 32, 64
    channels), global pooling and one linear layer. The two stage transitions use 1×1
    projection shortcuts (He et al.'s option B), so it has 33 convolutions where the
    zero-padding shortcuts of option A give the 31 Guo et al. count."""
    return ResNet((5, 5, 5), width, num_classes, in_channels, mean, std)


@register_model(
    "resnet20",
    input_shape=(1, 28, 28),
    default_dataset="fashion-mnist",
    paper="He et al. 2016, §4.2 (CIFAR ResNet, n = 3), for 28×28 grey images",
)
def resnet20(
    width: int = 16,
    num_classes: int = 10,
    in_channels: int = 1,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    norm: str = "batch",
) -> nn.Module:
    """ResNet-20 for 28×28 single-channel images (Fashion-MNIST, MNIST): a 3×3 stem,
    three stages of three basic blocks (16, 32, 64 channels at width 16; feature maps
    28, 14, 7), global pooling and one linear layer; 1×1 projection shortcuts at the
    two stage transitions (19 + 2 convolutions). The small sibling of the ResNet-56 the
    ICLR 2020 submission on AR as regularization trains on CIFAR-10; ``norm='none'``
    is that paper's batch-norm-free, Fixup-initialised variant (:class:`ResNet`)."""
    return ResNet((3, 3, 3), width, num_classes, in_channels, mean, std, norm)


@register_model(
    "resnet56",
    input_shape=(3, 32, 32),
    default_dataset="cifar10",
    paper="He et al. 2016, §4.2 (CIFAR ResNet, n = 9); the ICLR 2020 submission on AR "
    "as regularization, §5",
)
def resnet56(
    width: int = 16,
    num_classes: int = 10,
    in_channels: int = 3,
    mean: Sequence[float] | None = CIFAR10_MEAN,
    std: Sequence[float] | None = CIFAR10_STD,
    norm: str = "batch",
) -> nn.Module:
    """ResNet-56 for CIFAR-10: three stages of nine basic blocks (16, 32, 64 channels),
    1×1 projection shortcuts at the stage transitions (55 + 2 convolutions);
    ``norm='none'`` as the ICLR 2020 submission trains it (no batch norm, Fixup
    initialisation; see :class:`ResNet`)."""
    return ResNet((9, 9, 9), width, num_classes, in_channels, mean, std, norm)


VGG_LIKE = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, "M")
"""The convolution widths (and 2×2 max-pools, "M") of :func:`vgg_like`: 12 convolutions."""


@register_model(
    "vgg_like",
    input_shape=(3, 32, 32),
    default_dataset="cifar10",
    paper="Guo et al. 2018, §4.2 (a VGG-like network: 12 convolutions, 2 linear layers)",
)
def vgg_like(
    num_classes: int = 10,
    in_channels: int = 3,
    mean: Sequence[float] | None = CIFAR10_MEAN,
    std: Sequence[float] | None = CIFAR10_STD,
) -> nn.Module:
    """A VGG-style network for 32×32 inputs: twelve 3×3 convolutions with batch norm and
    ReLU in five pooled stages (:data:`VGG_LIKE`), then 512 → 512 → ``num_classes``.
    Guo et al. give only the layer counts; the widths follow VGG-16's."""
    layers: list[nn.Module] = [maybe_normalize(mean, std)]
    channels = in_channels
    for width in VGG_LIKE:
        if width == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        assert isinstance(width, int)
        layers += [
            nn.Conv2d(channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        ]
        channels = width
    layers += [nn.Flatten(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)
