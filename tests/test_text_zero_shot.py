import pytest
import torch
import torch.nn.functional as F
from torch import nn

from modalab.data.text import class_prompt_tokens, load_tokenizer, minilm_path, tokenize
from modalab.evaluation.features import FeatureSet
from modalab.evaluation.zero_shot import (
    class_embeddings,
    zero_shot_accuracy,
    zero_shot_logits,
    zero_shot_records,
)
from modalab.models import build_encoder
from modalab.models.multimodal import MultimodalEncoder
from modalab.models.pretrained import PretrainedTextEncoder

SENTENCES = ["A dog runs on the beach.", "Two cats sleep on a sofa.", "A red bus in the city."]


@pytest.fixture(scope="module")
def encoder():
    return PretrainedTextEncoder(embed_dim=8)


def test_minilm_matches_sentence_transformers(encoder):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(minilm_path(), device="cpu")
    expected = torch.as_tensor(reference.encode(SENTENCES, convert_to_numpy=True))
    tokens = tokenize(SENTENCES, load_tokenizer(), max_length=24)
    ours = F.normalize(encoder.sentence_embeddings(tokens), dim=-1)
    assert torch.allclose(ours, F.normalize(expected, dim=-1), atol=1e-4)


def test_minilm_frozen_vs_finetuned(encoder):
    tokens = tokenize(SENTENCES, load_tokenizer(), max_length=16)
    encoder.train()
    assert not encoder.backbone.training  # frozen backbone stays in eval mode
    encoder(tokens).sum().backward()
    assert all(p.grad is None for p in encoder.backbone.parameters())
    assert encoder.out.weight.grad is not None
    tuned = build_encoder("minilm_finetune", tokens, 8)
    tuned(tokens).sum().backward()
    assert any(p.grad is not None for p in tuned.backbone.parameters())
    with pytest.raises(ValueError, match=r"outside the encoder's vocabulary"):
        encoder(torch.tensor([[101, 40000, 102]]))


def test_minilm_pad_rows_are_masked(encoder):
    tokens = tokenize(["a dog"], load_tokenizer(), max_length=8)
    longer = tokenize(["a dog"], load_tokenizer(), max_length=20)
    assert torch.allclose(
        encoder.sentence_embeddings(tokens), encoder.sentence_embeddings(longer), atol=1e-5
    )
    empty = torch.zeros(1, 8, dtype=torch.long)
    assert torch.isfinite(encoder(empty)).all()


def test_zero_shot_by_hand():
    queries = torch.tensor([[1.0, 0.2], [0.1, 1.0], [-1.0, 0.1], [0.9, -0.1]])
    classes = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    logits = zero_shot_logits(queries, classes)
    assert torch.allclose(logits[0], torch.tensor([1.0, 0.2]) / torch.tensor(1.04).sqrt())
    label = torch.tensor([0, 1, 0, 1])
    # Predictions: 0, 1, 1 (cos -0.995 vs 0.0995), 0 → 2 of 4 correct.
    assert zero_shot_accuracy(queries, classes, label) == 0.5
    present = torch.tensor([True, True, False, False])
    assert zero_shot_accuracy(queries, classes, label, present) == 1.0
    with pytest.raises(ValueError, match=r"same joint space"):
        zero_shot_logits(queries, torch.zeros(2, 3))


class _BagOfTokens(nn.Module):
    """Text encoder whose output is the indicator of two token ids (for a checkable example)."""

    def forward(self, tokens):
        return torch.stack([(tokens == 3899).any(1), (tokens == 4937).any(1)], 1).float()


def test_class_embeddings_and_records():
    tok = load_tokenizer()
    prompts = class_prompt_tokens(["dog", "cat"], tok, 12, ["a {}.", "a photo of a {}."])
    assert tok.convert_tokens_to_ids(["dog", "cat"]) == [3899, 4937]
    model = MultimodalEncoder(nn.ModuleDict({"text": _BagOfTokens()}))
    classes = class_embeddings(lambda b: model(b.inputs), lambda r: r, prompts)
    assert torch.allclose(classes, torch.eye(2))
    test = FeatureSet(
        features={
            "image": torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]),
            "text": torch.zeros(3, 2),
        },
        present={"image": torch.ones(3, dtype=torch.bool), "text": torch.ones(3, dtype=torch.bool)},
        label=torch.tensor([0, 1, 1]),
        label_observed=torch.ones(3, dtype=torch.bool),
        clean_label=torch.tensor([0, 1, 1]),
        index=torch.arange(3),
    )
    records = zero_shot_records(test, classes)
    assert [(r.metric, r.modality) for r in records] == [("zero_shot_acc", "image")]
    assert records[0].value == pytest.approx(2 / 3)
