"""Per-modality encoders, each mapping one modality's input to a ``[B, embed_dim]`` vector.

Encoders know nothing of losses or of other modalities. Convolutional encoders are assembled
from MONAI's :class:`~monai.networks.blocks.Convolution` blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from torch import Tensor, nn

from modalab.models.norm import ChannelsLastBatchNorm2d
from modalab.registry import Registry

__all__ = [
    "ENCODERS",
    "ConvEncoder",
    "LeNetEncoder",
    "MLPEncoder",
    "TokenTransformerEncoder",
    "build_encoder",
    "default_encoder_name",
]

#: Encoder builders ``(input_shape, embed_dim, **kwargs) -> nn.Module``; ``input_shape``
#: excludes the batch dimension, ``vocab_size`` is passed for token inputs.
ENCODERS: Registry[Callable[..., nn.Module]] = Registry("encoder")


class ConvEncoder(nn.Module):
    """A small strided CNN (1-D or 2-D) followed by global average pooling and a linear map.

    Args:
        spatial_dims: 1 for waveforms/sequences ``[B, C, T]``, 2 for images ``[B, C, H, W]``.
        in_channels: Input channels.
        embed_dim: Output dimension.
        channels: Channels of the successive blocks.
        strides: Stride of each block.
        kernel_size: Kernel size of every block.
        channels_last: For 2-D inputs, keep the convolution weights and a copy of the input
            channels-last (NHWC); the whole stack then stays NHWC (oneDNN's native layout on
            CPU), which avoids layout conversions in the forward and backward passes. Same
            values as NCHW up to summation order; measured by ``benchmarks/bench_step.py``.

    Example:
        >>> enc = ConvEncoder(2, in_channels=3, embed_dim=16)
        >>> enc(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 16])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        embed_dim: int,
        channels: Sequence[int] = (32, 64, 128),
        strides: Sequence[int] = (2, 2, 2),
        kernel_size: int = 3,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if len(channels) != len(strides):
            raise ValueError(
                f"channels {list(channels)} and strides {list(strides)} must have equal length."
            )
        blocks: list[nn.Module] = []
        previous = in_channels
        for out, stride in zip(channels, strides):
            blocks.append(
                Convolution(
                    spatial_dims,
                    previous,
                    out,
                    strides=stride,
                    kernel_size=kernel_size,
                    # In place: the batch norm's backward needs its input, not its output, so
                    # the ReLU may overwrite it (one activation-sized buffer less per block;
                    # same values). Measured by ``benchmarks/bench_step.py``.
                    act=("RELU", {"inplace": True}),
                    norm="BATCH",
                )
            )
            previous = out
        self.features = nn.Sequential(*blocks)
        self.spatial_dims = spatial_dims
        self.channels_last = channels_last and spatial_dims == 2
        if self.channels_last:  # weights too: with NCHW weights oneDNN reorders every call
            for weight in self.features.parameters():
                if weight.dim() == 4:
                    weight.data = weight.data.to(memory_format=torch.channels_last)
        self.out = nn.Linear(previous, embed_dim)

    @property
    def width(self) -> int:
        """Channels of the feature map (the width of :meth:`token_states`)."""
        return int(self.out.in_features)

    def token_states(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Feature-map positions as tokens ``[B, N, width]`` and an all-true mask ``[B, N]``."""
        h = self._feature_map(x).flatten(2).transpose(1, 2)
        return h, torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)

    def forward(self, x: Tensor) -> Tensor:
        """Encode ``x`` of shape ``[B, C, *spatial]`` to ``[B, embed_dim]``."""
        h = self._feature_map(x)
        # Sum / count, not ``h.mean``: the mean's backward materialises an NCHW gradient for
        # the last NHWC activation, and the ReLU's backward over those mixed layouts took
        # 18 ms of a CLIP step; the sum's gradient stays a broadcast view (1.1 ms).
        spatial = tuple(range(2, h.dim()))
        return self.out(h.sum(dim=spatial) / math.prod(h.shape[2:]))

    def _feature_map(self, x: Tensor) -> Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.to(memory_format=torch.channels_last)
        return self.features(x)


class LeNetEncoder(nn.Module):
    """MultiBench's AV-MNIST LeNet: conv blocks with max pooling, then a linear map.

    The architecture of ``LeNet`` in ``unimodals/common_models.py`` of the repository
    pliang279/MultiBench (adapted there from CentralNet's ``models/central/avmnist.py`` of
    slyviacassell/_MFAS), as its AV-MNIST examples build it (``examples/multimedia/
    avmnist_simple_late_fusion.py``: ``LeNet(1, 6, 3)`` for the 28×28 image,
    ``LeNet(1, 6, 5)`` for the 112×112 spectrogram): a 5×5 convolution (padding 2, no bias)
    with ``channels`` filters, then ``layers`` 3×3 convolutions (padding 1, no bias), each
    doubling the channels; every convolution is followed by batch norm, ReLU and 2×2 max
    pooling; convolution weights are Kaiming-uniform initialised. MultiBench's encoder ends at
    the last pooled map (1×1 for both AV-MNIST inputs: 48 image / 192 audio features); here it is
    flattened and mapped linearly to ``embed_dim`` (modalab's encoder contract), the one
    difference. Written from the architecture's description, not copied.

    Args:
        in_channels: Input channels.
        embed_dim: Output dimension.
        spatial: ``(H, W)`` of the inputs (sizes the linear map).
        channels: Filters of the first convolution (MultiBench's AV-MNIST examples: 6).
        layers: 3×3 convolutions after the first (MultiBench's ``additional_layers``); ``None``:
            as many as bring the map to one row or column, ``floor(log2(min(H, W))) - 1``
            (3 for 28×28, 5 for 112×112, i.e. MultiBench's choices).
        channels_last: Keep weights and activations NHWC (see :class:`ConvEncoder`); same
            values up to summation order.

    Example:
        >>> enc = LeNetEncoder(1, embed_dim=16, spatial=(28, 28))
        >>> enc.layers, enc.width
        (3, 48)
        >>> enc(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 16])
        >>> LeNetEncoder(1, 16, spatial=(112, 112)).width
        192
    """

    def __init__(
        self,
        in_channels: int,
        embed_dim: int,
        spatial: Sequence[int],
        channels: int = 6,
        layers: int | None = None,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if len(spatial) != 2 or min(spatial) < 2:
            raise ValueError(f"lenet needs 2-D inputs [C, H, W] with H, W >= 2; got {spatial}.")
        most = int(min(spatial)).bit_length() - 2  # floor(log2(min(H, W))) - 1
        if layers is None:
            layers = most
        if not 0 <= layers <= most:
            raise ValueError(
                f"lenet: {layers} layers pool {list(spatial)} below 1 pixel; use 0 to at most "
                f"{most}."
            )
        if channels < 1:
            raise ValueError(f"lenet: channels must be >= 1; got {channels}.")
        self.layers = layers
        blocks: list[nn.Module] = []
        previous, out = in_channels, channels
        for i in range(layers + 1):
            kernel = 5 if i == 0 else 3
            conv = nn.Conv2d(previous, out, kernel, padding=kernel // 2, bias=False)
            nn.init.kaiming_uniform_(conv.weight)
            if channels_last:
                conv.weight.data = conv.weight.data.to(memory_format=torch.channels_last)
            blocks.append(nn.Sequential(conv, ChannelsLastBatchNorm2d(out)))
            previous, out = out, 2 * out
        self.channels_last = channels_last
        self.blocks = nn.ModuleList(blocks)
        height, width = (int(s) >> (layers + 1) for s in spatial)
        self.channels = previous
        self.out = nn.Linear(previous * height * width, embed_dim)
        nn.init.kaiming_uniform_(self.out.weight)

    @property
    def width(self) -> int:
        """Channels of the last feature map (the width of :meth:`token_states`)."""
        return self.channels

    def _last_map(self, x: Tensor) -> Tensor:
        """The last block's convolution + batch norm, before its pooling and ReLU."""
        if self.channels_last:
            x = x.to(memory_format=torch.channels_last)
        h = self.blocks[0](x)
        for block in self.blocks[1:]:
            # ReLU after the pooling: max commutes with the monotone ReLU, so this equals
            # MultiBench's pool(relu(.)) exactly, with the ReLU on a quarter of the values.
            h = block(F.relu(F.max_pool2d(h, 2)))
        return h

    def token_states(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Positions of the last block's map (before its pooling) ``[B, N, width]``, all kept."""
        h = F.relu(self._last_map(x)).flatten(2).transpose(1, 2)
        return h, torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)

    def forward(self, x: Tensor) -> Tensor:
        """Encode ``x`` of shape ``[B, C, H, W]`` to ``[B, embed_dim]``."""
        return self.out(F.relu(F.max_pool2d(self._last_map(x), 2)).flatten(1))


class TokenTransformerEncoder(nn.Module):
    """Token embedding + a small Transformer encoder + masked mean pooling over non-pad tokens.

    Args:
        vocab_size: Vocabulary size.
        embed_dim: Output dimension.
        max_length: Longest sequence (for learned positions).
        width: Transformer width.
        depth: Number of layers.
        heads: Attention heads.
        pad_id: Padding token id (excluded from attention and pooling).

    Example:
        >>> enc = TokenTransformerEncoder(vocab_size=30, embed_dim=8, max_length=10)
        >>> enc(torch.randint(1, 30, (3, 10))).shape
        torch.Size([3, 8])
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        max_length: int = 64,
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.token = nn.Embedding(vocab_size, width, padding_idx=pad_id)
        self.position = nn.Parameter(torch.zeros(1, max_length, width))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=2 * width, dropout=0.0, batch_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.out = nn.Linear(width, embed_dim)
        self.width = width
        self.vocab_size = vocab_size

    def token_states(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Per-token hidden states ``[B, L, width]`` and the non-pad mask ``[B, L]``."""
        keep = tokens != self.pad_id
        # A fully padded row (an absent caption) would make attention undefined: let it attend.
        keep_attn = keep | ~keep.any(dim=1, keepdim=True)
        h = self.token(tokens) + self.position[:, : tokens.shape[1]]
        h = self.transformer(h, src_key_padding_mask=~keep_attn)
        return h, keep

    def forward(self, tokens: Tensor) -> Tensor:
        """Encode token ids ``[B, L]`` to ``[B, embed_dim]``."""
        h, keep = self.token_states(tokens)
        weights = keep.float().unsqueeze(-1)
        pooled = (h * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.out(pooled)


class MLPEncoder(nn.Module):
    """A two-layer MLP for vector inputs ``[B, D]``.

    Example:
        >>> MLPEncoder(5, 3)(torch.zeros(2, 5)).shape
        torch.Size([2, 3])
    """

    def __init__(self, in_features: int, embed_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, embed_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Encode ``x`` of shape ``[B, D]`` (flattened if it has more dimensions)."""
        return self.net(x.flatten(1))


@ENCODERS.register("cnn2d")
def _cnn2d(input_shape: Sequence[int], embed_dim: int, **kwargs: Any) -> nn.Module:
    """Small MONAI CNN for images and spectrograms ``[C, H, W]``."""
    return ConvEncoder(2, input_shape[0], embed_dim, **kwargs)


@ENCODERS.register("lenet")
def _lenet(input_shape: Sequence[int], embed_dim: int, **kwargs: Any) -> nn.Module:
    """MultiBench's AV-MNIST LeNet for images and spectrograms ``[C, H, W]`` (``layers``)."""
    if len(input_shape) != 3:
        raise ValueError(f"lenet needs inputs [C, H, W]; got per-sample shape {list(input_shape)}.")
    return LeNetEncoder(input_shape[0], embed_dim, spatial=input_shape[1:], **kwargs)


@ENCODERS.register("cnn1d")
def _cnn1d(input_shape: Sequence[int], embed_dim: int, **kwargs: Any) -> nn.Module:
    """Small MONAI 1-D CNN for waveforms ``[C, T]`` (stride 4 per block)."""
    kwargs.setdefault("channels", (32, 64, 128, 128))
    kwargs.setdefault("strides", (4, 4, 4, 2))
    kwargs.setdefault("kernel_size", 9)
    return ConvEncoder(1, input_shape[0], embed_dim, **kwargs)


@ENCODERS.register("transformer")
def _transformer(
    input_shape: Sequence[int], embed_dim: int, vocab_size: int | None = None, **kwargs: Any
) -> nn.Module:
    """Small Transformer for token sequences ``[L]``."""
    if vocab_size is None:
        raise ValueError("The transformer encoder needs the dataset's vocab_size.")
    return TokenTransformerEncoder(vocab_size, embed_dim, max_length=input_shape[0], **kwargs)


@ENCODERS.register("mlp")
def _mlp(input_shape: Sequence[int], embed_dim: int, **kwargs: Any) -> nn.Module:
    """Two-layer MLP for vectors (inputs are flattened)."""
    size = 1
    for d in input_shape:
        size *= int(d)
    return MLPEncoder(size, embed_dim, **kwargs)


def default_encoder_name(example: Tensor) -> str:
    """The default encoder for a modality, chosen from one example batch's dtype and rank.

    Integer ``[B, L]`` → ``transformer``; float ``[B, C, H, W]`` → ``cnn2d``;
    float ``[B, C, T]`` → ``cnn1d``; anything else → ``mlp``.
    """
    if not example.is_floating_point() and example.dim() == 2:
        return "transformer"
    if example.dim() == 4:
        return "cnn2d"
    if example.dim() == 3:
        return "cnn1d"
    return "mlp"


def build_encoder(
    name: str, example: Tensor, embed_dim: int, vocab_size: int | None = None, **kwargs: Any
) -> nn.Module:
    """Build a registered encoder for inputs shaped like ``example`` (``[B, ...]``).

    Args:
        name: Registered encoder name, or ``"auto"`` for :func:`default_encoder_name`.
        example: An example batch of the modality.
        embed_dim: Output dimension.
        vocab_size: Vocabulary size, for token inputs.
        **kwargs: Passed to the encoder.

    Returns:
        The encoder module.
    """
    if name == "auto":
        name = default_encoder_name(example)
    builder = ENCODERS.get(name)
    if name == "transformer":
        kwargs["vocab_size"] = vocab_size
    return builder(tuple(example.shape[1:]), embed_dim, **kwargs)


def token_states(encoder: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-token states ``[B, N, W]`` and mask ``[B, N]`` of an encoder that has them.

    Args:
        encoder: A :class:`ConvEncoder` (feature-map positions) or a
            :class:`TokenTransformerEncoder` (per-token states).
        x: The encoder's input batch.

    Raises:
        ValueError: If the encoder has no ``token_states`` (e.g. :class:`MLPEncoder`).
    """
    method = getattr(encoder, "token_states", None)
    if method is None:
        raise ValueError(
            f"{type(encoder).__name__} has no token_states; token-level methods (masked "
            "tokens, cross-attention fusion, captioning) need a CNN or Transformer encoder."
        )
    states, keep = method(x)
    return states, keep


def token_width(encoder: nn.Module) -> int:
    """Width ``W`` of :func:`token_states` of an encoder."""
    width = getattr(encoder, "width", None)
    if not isinstance(width, int):
        raise ValueError(f"{type(encoder).__name__} has no token width.")
    return width
