import pytest
import torch
from sklearn.metrics import precision_score, recall_score

from modalab.evaluation.noisy_labels import flag_precision_recall, noisy_label_probe


def test_flag_precision_recall_matches_sklearn():
    g = torch.Generator().manual_seed(0)
    flagged = torch.rand(100, generator=g) < 0.3
    noisy = torch.rand(100, generator=g) < 0.2
    p, r = flag_precision_recall(flagged, noisy)
    assert p == pytest.approx(precision_score(noisy.numpy(), flagged.numpy()))
    assert r == pytest.approx(recall_score(noisy.numpy(), flagged.numpy()))


def _blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 4, (n,), generator=g)
    centres = torch.tensor([[3.0, 0], [0, 3.0], [-3.0, 0], [0, -3.0]])
    return centres[label] + torch.randn(n, 2, generator=g), label


def test_small_loss_selection_flags_mislabelled_samples():
    x, clean = _blobs(600, 0)
    x_test, y_test = _blobs(400, 1)
    g = torch.Generator().manual_seed(2)
    noisy_rows = torch.rand(600, generator=g) < 0.3
    noisy = clean.clone()
    noisy[noisy_rows] = (
        clean[noisy_rows] + torch.randint(1, 4, (int(noisy_rows.sum()),), generator=g)
    ) % 4
    out = noisy_label_probe(
        x, noisy, x_test, y_test, 4, loss="ce", forget_rate=0.3, noise_mask=noisy_rows
    )
    assert out.flagged.sum() == 180
    # flagged samples are far more often mislabelled than the 30% base rate
    assert out.precision > 0.8 and out.recall > 0.8
    assert out.accuracy > 0.9
    for loss in ("gce", "sce"):
        robust = noisy_label_probe(x, noisy, x_test, y_test, 4, loss=loss)
        assert robust.accuracy > 0.9 and not robust.flagged.any()


def test_invalid_arguments():
    x = torch.zeros(4, 2)
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="loss"):
        noisy_label_probe(x, y, x, y, 2, loss="mae")
    with pytest.raises(ValueError, match="forget_rate"):
        noisy_label_probe(x, y, x, y, 2, forget_rate=1.0)
