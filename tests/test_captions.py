import json

import numpy as np
import pytest
import torch
from PIL import Image

from _real_data import shared_data_dir
from modalab.data.captions import load_images, make_coco, make_manifest
from modalab.data.files import CorruptDataError, MissingDataError
from modalab.data.text import load_tokenizer


@pytest.fixture(scope="module")
def coco():
    root = shared_data_dir("coco_mini/annotations_full")
    splits = make_coco(
        data_dir=str(root), folder="coco_mini", annotation_dirs=["annotations", "annotations_full"]
    )
    return root / "coco_mini", splits


def _reference(root):
    captions, labels = {}, {}
    for split in ("train", "val"):
        for folder in ("annotations", "annotations_full"):
            path = root / folder / f"captions_{split}2017.json"
            if path.is_file():
                for ann in json.loads(path.read_text())["annotations"]:
                    captions.setdefault(ann["image_id"], set()).add(ann["caption"].strip())
        inst = json.loads((root / "annotations" / f"instances_{split}2017.json").read_text())
        sup = {c["id"]: c["supercategory"] for c in inst["categories"]}
        best = {}
        for ann in inst["annotations"]:
            if ann["area"] > best.get(ann["image_id"], (-1, ""))[0]:
                best[ann["image_id"]] = (ann["area"], sup[ann["category_id"]])
        labels.update({k: v[1] for k, v in best.items()})
    return captions, labels


def test_coco_mini_pairs_labels_and_shapes(coco):
    root, splits = coco
    captions, labels = _reference(root)
    assert sum(splits.info.extra["images"].values()) == 239
    assert splits.info.extra["unlabelled_train_images"] == 80  # val images without instances here
    assert splits.info.sizes["test"] == splits.info.extra["images"]["test"]  # one caption each
    tok = load_tokenizer("minilm")
    names = splits.info.class_names
    for name in ("train", "test"):
        split = getattr(splits, name)
        assert split.inputs["image"].shape == (len(split), 3, 64, 64)
        assert split.inputs["text"].dtype == torch.long and split.inputs["text"].shape[1] == 32
        for row in range(0, len(split), 7):
            image_id = int(splits.info.extra["image_ids"][int(split.index[row])].split("/")[1][:-4])
            text = splits.info.extra["captions"][name][row]
            assert text in captions[image_id]
            decoded = tok.decode(split.inputs["text"][row], skip_special_tokens=True)
            assert (
                decoded.split()[:3]
                == tok.decode(tok(text)["input_ids"], skip_special_tokens=True).split()[:3]
            )
            if bool(split.label_observed[row]):
                assert names[int(split.label[row])] == labels[image_id]
            else:
                assert image_id not in labels and name == "train"
    assert bool(splits.test.label_observed.all())
    assert splits.info.pad_id == tok.pad_token_id and splits.info.vocab_size == len(tok)
    assert splits.info.class_prompt_tokens.shape[:2] == (len(names), 3)


def test_coco_without_full_captions_names_the_images():
    root = shared_data_dir("coco_mini")
    with pytest.raises(MissingDataError, match=r"80 image\(s\) in .*val2017 have no caption"):
        make_coco(data_dir=str(root), folder="coco_mini")


def _images(tmp_path, n):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = tmp_path / "img" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_manifest_csv_and_jsonl(tmp_path):
    paths = _images(tmp_path, 12)
    rows = []
    for i, p in enumerate(paths):
        for j in range(2):
            rows.append(
                {
                    "filepath": f"img/{p.name}",
                    "title": f"picture {i} caption {j}",
                    "label": ["cat", "dog", "bird"][i % 3],
                }
            )
    import pandas as pd

    pd.DataFrame(rows).to_csv(tmp_path / "pairs.tsv", sep="\t", index=False)
    with open(tmp_path / "pairs.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    for name in ("pairs.tsv", "pairs.jsonl"):
        splits = make_manifest(
            data_dir=str(tmp_path),
            path=name,
            label_key="label",
            val_fraction=0.25,
            test_fraction=0.25,
        )
        assert splits.info.class_names == ["bird", "cat", "dog"]
        assert splits.info.extra["images"] == {"train": 6, "val": 3, "test": 3}
        assert splits.info.sizes["train"] == 12  # two captions per training image
        for row in range(len(splits.train)):
            image = int(splits.train.index[row])
            assert splits.info.extra["captions"]["train"][row].startswith(f"picture {image} ")
            assert (
                splits.info.class_names[int(splits.train.label[row])]
                == ["cat", "dog", "bird"][image % 3]
            )
    expected = load_images([paths[0]], 16)[0]
    with Image.open(paths[0]) as im:
        # Centre square crop (5..25 of a 30-wide image) resized in one bicubic step.
        crop = np.asarray(
            im.convert("RGB").resize((16, 16), Image.Resampling.BICUBIC, box=(5, 0, 25, 20))
        )
    np.testing.assert_allclose(expected.permute(1, 2, 0).numpy(), crop / 255.0, atol=1 / 255)


def test_manifest_errors(tmp_path):
    _images(tmp_path, 3)
    (tmp_path / "m.csv").write_text("path,caption\nimg/0.png,a\nimg/9.png,b\n")
    with pytest.raises(CorruptDataError, match=r"no column\(s\) \['filepath', 'title'\]"):
        make_manifest(path=str(tmp_path / "m.csv"))
    with pytest.raises(MissingDataError, match=r"9.png"):
        make_manifest(path=str(tmp_path / "m.csv"), img_key="path", caption_key="caption")
    with pytest.raises(MissingDataError, match=r"does not exist"):
        make_manifest(path=str(tmp_path / "absent.csv"))
