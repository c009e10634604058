"""Cross-attention fusion (ViLBERT/LXMERT-style co-attention) and a caption decoder.

* :class:`CrossAttentionFusion` — Lu, Batra, Parikh & Lee, "ViLBERT: Pretraining
  Task-Agnostic Visiolinguistic Representations for Vision-and-Language Tasks", NeurIPS 2019;
  Tan & Bansal, "LXMERT: Learning Cross-Modality Encoder Representations from Transformers",
  EMNLP 2019. One token stream per modality, each layer a self-attention block per stream
  followed by a co-attention block in which a stream's tokens attend to the tokens of every
  other stream. An absent modality's stream is replaced by a learned *absent* embedding, so the
  other streams see "missing" explicitly rather than zeros.
* :class:`CaptionDecoder` — a causal Transformer decoder that cross-attends to the tokens of the
  conditioning modalities (Yu et al., "CoCa", TMLR 2022).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["CaptionDecoder", "CoAttentionLayer", "CrossAttentionFusion", "FusionOutput"]


@dataclass
class FusionOutput:
    """What the fusion returns.

    Attributes:
        cls: Modality → ``[B, W]`` the stream's summary token.
        states: Modality → ``[B, N_m, W]`` the stream's token states (summary token excluded).
        fused: ``[B, W]`` mean of the summary tokens of the *present* modalities.
    """

    cls: dict[str, Tensor]
    states: dict[str, Tensor]
    fused: Tensor


class CoAttentionLayer(nn.Module):
    """Self-attention within each stream, then co-attention of each stream to the others.

    Args:
        modalities: Stream names.
        width: Token width.
        heads: Attention heads.
    """

    def __init__(self, modalities: Sequence[str], width: int, heads: int) -> None:
        super().__init__()
        self.self_attention = nn.ModuleDict(
            {
                m: nn.TransformerEncoderLayer(
                    width, heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True
                )
                for m in modalities
            }
        )
        self.norm = nn.ModuleDict({m: nn.LayerNorm(width) for m in modalities})
        self.cross_attention = nn.ModuleDict(
            {m: nn.MultiheadAttention(width, heads, batch_first=True) for m in modalities}
        )
        self.feed_forward = nn.ModuleDict(
            {
                m: nn.Sequential(
                    nn.LayerNorm(width),
                    nn.Linear(width, 2 * width),
                    nn.GELU(),
                    nn.Linear(2 * width, width),
                )
                for m in modalities
            }
        )

    def forward(
        self, states: Mapping[str, Tensor], keep: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """Update ``{m: [B, N_m, W]}`` with key masks ``{m: [B, N_m]}`` (True = attend)."""
        hidden = {
            m: self.self_attention[m](x, src_key_padding_mask=~keep[m]) for m, x in states.items()
        }
        out: dict[str, Tensor] = {}
        for m, x in hidden.items():
            others = [o for o in hidden if o != m]
            if not others:
                out[m] = x
                continue
            memory = torch.cat([hidden[o] for o in others], dim=1)
            memory_keep = torch.cat([keep[o] for o in others], dim=1)
            attended, _ = self.cross_attention[m](
                self.norm[m](x),
                memory,
                memory,
                key_padding_mask=~memory_keep,
                need_weights=False,
            )
            x = x + attended
            out[m] = x + self.feed_forward[m](x)
        return out


class CrossAttentionFusion(nn.Module):
    """Per-modality token streams joined by co-attention layers, with learned absent tokens.

    Args:
        input_dims: Modality → width of its input tokens.
        max_tokens: Modality → largest number of input tokens (for learned positions).
        width: Width of the streams.
        depth: Number of co-attention layers.
        heads: Attention heads.

    Example:
        >>> fusion = CrossAttentionFusion({"a": 4, "b": 6}, {"a": 3, "b": 2}, width=8, depth=1)
        >>> tokens = {"a": torch.randn(2, 3, 4), "b": torch.randn(2, 2, 6)}
        >>> keep = {k: torch.ones(v.shape[:2], dtype=torch.bool) for k, v in tokens.items()}
        >>> present = {"a": torch.tensor([True, True]), "b": torch.tensor([True, False])}
        >>> out = fusion(tokens, keep, present)
        >>> out.fused.shape, out.states["a"].shape
        (torch.Size([2, 8]), torch.Size([2, 3, 8]))
    """

    def __init__(
        self,
        input_dims: Mapping[str, int],
        max_tokens: Mapping[str, int],
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
    ) -> None:
        super().__init__()
        names = list(input_dims)
        self.modalities = tuple(names)
        self.width = width
        self.input = nn.ModuleDict({m: nn.Linear(d, width) for m, d in input_dims.items()})
        self.position = nn.ParameterDict(
            {m: nn.Parameter(0.02 * torch.randn(1, max_tokens[m] + 1, width)) for m in names}
        )
        self.cls_token = nn.ParameterDict(
            {m: nn.Parameter(0.02 * torch.randn(width)) for m in names}
        )
        self.absent_token = nn.ParameterDict(
            {m: nn.Parameter(0.02 * torch.randn(width)) for m in names}
        )
        self.mask_token = nn.ParameterDict(
            {m: nn.Parameter(0.02 * torch.randn(width)) for m in names}
        )
        self.layers = nn.ModuleList([CoAttentionLayer(names, width, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)

    def forward(
        self,
        tokens: Mapping[str, Tensor],
        keep: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        masked: Mapping[str, Tensor] | None = None,
    ) -> FusionOutput:
        """Fuse token streams.

        Args:
            tokens: Modality → ``[B, N_m, D_m]`` input tokens.
            keep: Modality → ``[B, N_m]`` bool: real (non-pad) tokens.
            present: Modality → ``[B]`` bool. An absent row's stream is the learned absent
                token alone (plus the summary token).
            masked: Optional modality → ``[B, N_m]`` bool: tokens replaced by a learned mask
                token (masked modelling).

        Returns:
            Summary tokens, token states and the fused vector.
        """
        states: dict[str, Tensor] = {}
        keeps: dict[str, Tensor] = {}
        for m, x in tokens.items():
            h = self.input[m](x)
            b, n, _ = h.shape
            if masked is not None and m in masked:
                h = torch.where(masked[m].unsqueeze(-1), self.mask_token[m].to(h), h)
            absent = ~present[m]
            h = torch.where(absent.view(b, 1, 1), self.absent_token[m].to(h), h)
            k = keep[m] & present[m].unsqueeze(1)
            first = torch.zeros_like(k)
            first[:, 0] = True
            k = torch.where(absent.unsqueeze(1), first, k | (~k.any(1, keepdim=True) & first))
            cls = self.cls_token[m].to(h).expand(b, 1, -1)
            states[m] = torch.cat([cls, h], dim=1) + self.position[m][:, : n + 1]
            keeps[m] = torch.cat([torch.ones_like(k[:, :1]), k], dim=1)
        for layer in self.layers:
            states = layer(states, keeps)
        states = {m: self.norm(h) for m, h in states.items()}
        cls = {m: h[:, 0] for m, h in states.items()}
        names = list(cls)
        stacked = torch.stack([cls[m] for m in names], dim=1)
        weight = torch.stack([present[m] for m in names], dim=1).to(stacked.dtype)
        fused = (stacked * weight.unsqueeze(-1)).sum(1) / weight.sum(1, keepdim=True).clamp_min(1)
        return FusionOutput(cls, {m: h[:, 1:] for m, h in states.items()}, fused)


class CaptionDecoder(nn.Module):
    """Causal Transformer decoder over caption tokens, cross-attending to a memory.

    Args:
        vocab_size: Vocabulary size.
        max_length: Longest caption.
        width: Decoder width (the memory must have this width).
        depth: Decoder layers.
        heads: Attention heads.
        pad_id: Padding id.

    Example:
        >>> dec = CaptionDecoder(vocab_size=10, max_length=5, width=8, depth=1)
        >>> dec(torch.randint(1, 10, (2, 5)), torch.randn(2, 3, 8),
        ...     torch.ones(2, 3, dtype=torch.bool)).shape
        torch.Size([2, 5, 10])
    """

    def __init__(
        self,
        vocab_size: int,
        max_length: int,
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.token = nn.Embedding(vocab_size, width, padding_idx=pad_id)
        self.position = nn.Parameter(0.02 * torch.randn(1, max_length, width))
        layer = nn.TransformerDecoderLayer(
            width, heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, depth)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, vocab_size)

    def forward(self, tokens: Tensor, memory: Tensor, memory_keep: Tensor) -> Tensor:
        """Next-token logits ``[B, L, V]`` of ``tokens [B, L]`` given ``memory [B, M, W]``.

        Rows whose memory is entirely masked attend to all of it (their loss must be excluded
        by the caller) so that attention stays defined.
        """
        length = tokens.shape[1]
        h = self.token(tokens) + self.position[:, :length]
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=tokens.device)
        memory_keep = memory_keep | ~memory_keep.any(dim=1, keepdim=True)
        h = self.decoder(
            h, memory, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=~memory_keep
        )
        return self.out(self.norm(h))  # type: ignore[no-any-return]

    @torch.no_grad()
    def generate(
        self, memory: Tensor, memory_keep: Tensor, start_id: int, length: int, end_id: int = -1
    ) -> Tensor:
        """Greedy autoregressive decoding of ``length`` tokens.

        Args:
            memory: ``[B, M, W]`` conditioning tokens.
            memory_keep: ``[B, M]`` bool.
            start_id: First token of every caption (e.g. ``[CLS]``).
            length: Total length including the start token (at most ``max_length``).
            end_id: Token after which a caption is padded (``-1``: none).

        Returns:
            ``[B, length]`` token ids.

        Example:
            >>> dec = CaptionDecoder(vocab_size=10, max_length=5, width=8, depth=1)
            >>> dec.generate(torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool), 1, 5).shape
            torch.Size([2, 5])
        """
        if length > self.position.shape[1]:
            raise ValueError(f"length {length} exceeds max_length {self.position.shape[1]}.")
        tokens = torch.full((memory.shape[0], 1), start_id, dtype=torch.long, device=memory.device)
        finished = torch.zeros(memory.shape[0], dtype=torch.bool, device=memory.device)
        for _ in range(length - 1):
            following = self(tokens, memory, memory_keep)[:, -1].argmax(-1)
            following = following.masked_fill(finished, self.pad_id)
            finished |= following == end_id
            tokens = torch.cat([tokens, following.unsqueeze(1)], dim=1)
        return tokens
