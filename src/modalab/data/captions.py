"""Image–text pairs: COCO caption annotations and open_clip-style manifests.

* ``coco``: COCO 2017 (Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014;
  captions: Chen et al., "Microsoft COCO Captions", arXiv 2015). Images are the JPEG files found
  in ``{folder}/{split}2017/``; captions come from ``captions_{split}2017.json`` and the labels
  from ``instances_{split}2017.json`` (the (super)category of each image's largest object), both
  searched in the annotation folders given. Images without instance annotations have no label:
  they go to the training split with ``label_observed=False`` (usable for self-supervised
  pre-training, never for probes).
* ``manifest``: a CSV/TSV/JSONL file of image path + caption (+ label) in the open_clip
  convention (``filepath`` and ``title`` columns, Ilharco et al., OpenCLIP, 2021), for users'
  own paired data. Several rows with the same image give it several captions.

Images are read with Pillow, centre-cropped to a square and resized to ``image_size``
(``[N, 3, S, S]`` in [0, 1]); text goes through a Hugging Face tokenizer (see
:mod:`modalab.data.text`). Splits are by image (all captions of an image in one split); the
training split has one row per (image, caption) up to ``captions_per_image``, validation and
test one row per image with its first caption (so retrieval is one-to-one). ``info`` carries
``vocab_size``, ``pad_id``, ``class_names`` and ``class_prompt_tokens`` ``[C, T, L]`` for
zero-shot classification.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from modalab.data.files import (
    SOURCES,
    CorruptDataError,
    DataError,
    DataFile,
    DataSource,
    MissingDataError,
    RemoteFile,
    SkippedFiles,
    check_on_error,
    resolve_data_dir,
)
from modalab.data.integrity import duplicate_files
from modalab.data.registry import DATASETS
from modalab.data.tensor_dataset import DataInfo, MultimodalTensorDataset, Splits
from modalab.data.text import DEFAULT_PROMPTS, class_prompt_tokens, load_tokenizer, tokenize

__all__ = [
    "COCOConfig",
    "ManifestConfig",
    "image_text_splits",
    "load_images",
    "make_coco",
    "make_manifest",
    "read_coco",
]


def load_images(paths: Sequence[Path], size: int) -> Tensor:
    """Read images with Pillow, centre-crop to square, resize: ``[N, 3, size, size]`` in [0, 1].

    Raises:
        MissingDataError: A file does not exist.
        CorruptDataError: A file is not a readable image.
    """
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        if not path.is_file():
            raise MissingDataError(f"Image file {path} does not exist.")
        try:
            with Image.open(path) as image:
                fitted = ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.BICUBIC)
        except (UnidentifiedImageError, OSError) as error:
            raise CorruptDataError(f"{path}: not a readable image ({error}).") from None
        out[i] = np.asarray(fitted)
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


@dataclass
class _Pairs:
    paths: list[Path]
    captions: list[list[str]]
    label: np.ndarray  # -1: no label
    class_names: list[str]
    ids: list[str]


def image_text_splits(
    pairs: _Pairs,
    name: str,
    image_size: int,
    tokenizer_name: str,
    max_length: int,
    captions_per_image: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    prompts: Sequence[str],
) -> Splits:
    """Split image–caption pairs by image and build the tensors (see the module docstring)."""
    if not pairs.paths:
        raise MissingDataError(f"{name}: no image–caption pairs were found.")
    labelled = np.flatnonzero(pairs.label >= 0)
    unlabelled = np.flatnonzero(pairs.label < 0)
    rng = np.random.default_rng(seed)
    order = rng.permutation(labelled)
    n_test = max(1, round(labelled.size * test_fraction))
    n_val = max(1, round(labelled.size * val_fraction))
    if labelled.size < n_test + n_val + 1:
        raise ValueError(
            f"{name}: {labelled.size} labelled images are too few for train/val/test splits."
        )
    parts = {
        "train": np.sort(np.concatenate([order[n_test + n_val :], unlabelled])),
        "val": np.sort(order[n_test : n_test + n_val]),
        "test": np.sort(order[:n_test]),
    }
    tokenizer = load_tokenizer(tokenizer_name)
    images = load_images(pairs.paths, image_size)
    num_classes = max(1, len(pairs.class_names))
    datasets: dict[str, MultimodalTensorDataset] = {}
    texts: dict[str, list[str]] = {}
    for split, rows in parts.items():
        keep = captions_per_image if split == "train" else 1
        image_rows, caption_text = [], []
        for r in rows:
            for caption in pairs.captions[r][:keep]:
                image_rows.append(int(r))
                caption_text.append(caption)
        index = torch.tensor(image_rows, dtype=torch.long)
        label = torch.from_numpy(pairs.label[image_rows])
        datasets[split] = MultimodalTensorDataset(
            {"image": images[index], "text": tokenize(caption_text, tokenizer, max_length)},
            label.clamp_min(0),
            label_observed=label >= 0,
            index=index,
            num_classes=num_classes,
        )
        texts[split] = caption_text
    info = DataInfo(
        name=name,
        sizes={s: len(d) for s, d in datasets.items()},
        class_names=pairs.class_names,
        vocab_size=len(tokenizer),
        pad_id=int(tokenizer.pad_token_id),
        class_prompt_tokens=(
            class_prompt_tokens(pairs.class_names, tokenizer, max_length, prompts)
            if pairs.class_names
            else None
        ),
        extra={
            "images": {s: int(r.size) for s, r in parts.items()},
            "unlabelled_train_images": int(unlabelled.size),
            "captions": texts,
            "image_ids": pairs.ids,
            "tokenizer": tokenizer_name,
            "prompts": list(prompts),
        },
    )
    return Splits(datasets["train"], datasets["val"], datasets["test"], num_classes, info)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, json.JSONDecodeError) as error:
        raise CorruptDataError(f"{path}: not a readable JSON annotation file ({error}).") from None


def _json_list(data: Any, key: str, path: Path) -> list[Any]:
    """``data[key]`` as a list, or an error naming the file and the key."""
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list):
        raise CorruptDataError(
            f"{path}: no {key!r} list at the top level (found keys "
            f"{sorted(data)[:10] if isinstance(data, dict) else type(data).__name__}); "
            "not a COCO annotation file."
        )
    return value


def _json_field(item: Any, key: str, path: Path, where: str) -> Any:
    """``item[key]``, or an error naming the file, the entry and the key."""
    if not isinstance(item, dict) or key not in item:
        raise CorruptDataError(f"{path}: an entry of {where} has no {key!r} field ({item!r:.80}).")
    return item[key]


def read_coco(
    root: Path, splits: Sequence[str], annotation_dirs: Sequence[str], label: str
) -> _Pairs:
    """Collect the COCO images on disk with their captions and labels.

    Args:
        root: The COCO folder (with ``{split}2017/`` and annotation folders).
        splits: COCO splits to read, e.g. ``["train", "val"]``.
        annotation_dirs: Folders (relative to ``root``) searched for annotation files; captions
            found in several are merged per image.
        label: ``supercategory`` or ``category`` of each image's largest annotated object.

    Raises:
        MissingDataError: No image folder, no caption file, or images without any caption.
    """
    paths: list[Path] = []
    captions: list[list[str]] = []
    objects: list[str | None] = []
    ids: list[str] = []
    for split in splits:
        folder = root / f"{split}2017"
        files = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
        caption_files = [root / d / f"captions_{split}2017.json" for d in annotation_dirs]
        present = [p for p in caption_files if p.is_file()]
        if not files or not present:
            what = (
                f"images in {folder}/"
                if not files
                else "any of " + ", ".join(str(p) for p in caption_files)
            )
            raise MissingDataError(
                f"COCO {split}2017: no {what}. " + SOURCES.get("coco").how_to_get(root.parent)
            )
        by_image: dict[int, list[str]] = {}
        for path in present:
            for ann in _json_list(_read_json(path), "annotations", path):
                caption = _json_field(ann, "caption", path, "annotations[]")
                known = by_image.setdefault(_json_field(ann, "image_id", path, "annotations[]"), [])
                if str(caption).strip() not in known:
                    known.append(str(caption).strip())
        biggest: dict[int, tuple[float, str]] = {}
        for directory in annotation_dirs:
            instances = root / directory / f"instances_{split}2017.json"
            if not instances.is_file():
                continue
            data = _read_json(instances)
            key = label if label == "supercategory" else "name"
            names = {
                _json_field(c, "id", instances, "categories[]"): _json_field(
                    c, key, instances, "categories[]"
                )
                for c in _json_list(data, "categories", instances)
            }
            for ann in _json_list(data, "annotations", instances):
                area = float(_json_field(ann, "area", instances, "annotations[]"))
                category = _json_field(ann, "category_id", instances, "annotations[]")
                if category not in names:
                    raise CorruptDataError(
                        f"{instances}: an annotation has category_id {category!r}, which is "
                        f"not among the file's categories {sorted(names)[:20]}. The file is "
                        "damaged or edited; re-download the official annotations."
                    )
                image_id = _json_field(ann, "image_id", instances, "annotations[]")
                if area > biggest.get(image_id, (-1.0, ""))[0]:
                    biggest[image_id] = (area, names[category])
        without = [f.name for f in files if int(f.stem) not in by_image]
        if without:
            raise MissingDataError(
                f"COCO {split}2017: {len(without)} image(s) in {folder} have no caption in "
                f"{[str(p) for p in present]} (e.g. {without[:3]}); add the folder of the full "
                "official captions file to data.annotation_dirs."
            )
        for f in files:
            image_id = int(f.stem)
            paths.append(f)
            captions.append(sorted(by_image[image_id]))
            objects.append(biggest[image_id][1] if image_id in biggest else None)
            ids.append(f"{split}2017/{f.name}")
    class_names = sorted({o for o in objects if o is not None})
    label_ids = np.array([class_names.index(o) if o is not None else -1 for o in objects])
    return _Pairs(paths, captions, label_ids, class_names, ids)


@dataclass
class _ImageCaptionConfig:
    """The fields every image–caption dataset config shares (documented by each subclass)."""

    name: str = ""
    data_dir: str = ""
    image_size: int = 64
    tokenizer: str = "minilm"
    max_length: int = 32
    captions_per_image: int = 5
    val_fraction: float = 0.15
    test_fraction: float = 0.3
    prompts: list[str] = field(default_factory=lambda: list(DEFAULT_PROMPTS))
    seed: int = 0
    on_error: str = "raise"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field (checked when the config is composed)."""
        check_on_error(self.on_error)
        _check_fractions(
            self.val_fraction, self.test_fraction, self.captions_per_image, self.image_size
        )


@dataclass
class COCOConfig(_ImageCaptionConfig):
    """Configuration of ``data=coco``.

    Attributes:
        name: Dataset name.
        data_dir: Data directory (empty: ``$MODALAB_DATA``, else ``~/.modalab/data``).
        folder: The COCO folder under the data directory.
        splits: COCO splits whose images on disk are used.
        annotation_dirs: Annotation folders searched (relative to ``folder``).
        label: ``supercategory`` or ``category`` of the largest annotated object.
        image_size: Side of the resized images.
        tokenizer: ``minilm`` or a local Hugging Face tokenizer folder.
        max_length: Token sequence length.
        captions_per_image: Training rows per image (one per caption).
        val_fraction: Fraction of labelled images for validation.
        test_fraction: Fraction of labelled images for test.
        prompts: Zero-shot prompt templates (``{}`` is the class name).
        seed: Seed of the split.
        on_error: ``raise`` (default): an unreadable image is an error naming it; ``skip``:
            drop such images, warn with their count and record them in ``info.skipped``.
    """

    name: str = "coco"
    folder: str = "coco"
    splits: list[str] = field(default_factory=lambda: ["train", "val"])
    annotation_dirs: list[str] = field(default_factory=lambda: ["annotations"])
    label: str = "supercategory"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field (checked when the config is composed)."""
        super().validate()
        if self.label not in ("supercategory", "category"):
            raise ValueError(
                f"data.label must be 'supercategory' or 'category', got {self.label!r}."
            )


def _drop_duplicates(pairs: _Pairs, on_error: str, skipped: SkippedFiles, where: str) -> _Pairs:
    """Refuse or drop (``on_error=skip``, recorded) entries naming the same image twice.

    Two entries are the same image when their paths are equal after normalisation
    (``./imgs/x.jpg`` = ``imgs/x.jpg``) or their files hold the same bytes (a copy under a
    second name): split by image, such pairs would land in train and test at once.

    Raises:
        DataError: Under ``on_error="raise"``, naming the duplicates and the fix.
    """
    duplicates = duplicate_files(pairs.paths)
    if not duplicates:
        return pairs
    if on_error != "skip":
        listed = "\n".join(f"  - {reason}" for _, _, reason in duplicates[:5])
        raise DataError(
            f"{where}: {len(duplicates)} duplicated image(s) (same file, or same bytes under "
            f"another name):\n{listed}\nEach would be in two splits at once and inflate the "
            "scores. Remove the duplicates, or set data.on_error=skip to keep the first "
            "occurrence only (the others are counted)."
        )
    drop = {later for _, later, _ in duplicates}
    for _, later, reason in duplicates:
        skipped.add(pairs.paths[later], DataError(f"duplicate: {reason}"))
    keep = [i for i in range(len(pairs.paths)) if i not in drop]
    return _Pairs(
        [pairs.paths[i] for i in keep],
        [pairs.captions[i] for i in keep],
        pairs.label[keep],
        pairs.class_names,
        [pairs.ids[i] for i in keep],
    )


def _drop_unreadable(pairs: _Pairs, skipped: SkippedFiles) -> _Pairs:
    """The pairs whose image reads, recording the others in ``skipped`` (``on_error=skip``)."""
    keep = []
    for i, path in enumerate(pairs.paths):
        try:
            load_images([path], 8)
        except (MissingDataError, CorruptDataError) as error:
            skipped.add(path, error)
        else:
            keep.append(i)
    return _Pairs(
        [pairs.paths[i] for i in keep],
        [pairs.captions[i] for i in keep],
        pairs.label[keep],
        pairs.class_names,
        [pairs.ids[i] for i in keep],
    )


def _check_fractions(val: float, test: float, per_image: int, size: int) -> None:
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(
            f"data.val_fraction={val} and data.test_fraction={test} must be in (0, 1) and sum "
            "to less than 1."
        )
    if per_image < 1 or size < 16:
        raise ValueError("Need data.captions_per_image >= 1 and data.image_size >= 16.")


@DATASETS.register("coco", config=COCOConfig, sources=("coco",))
def make_coco(**kwargs: Any) -> Splits:
    """COCO 2017 image–caption pairs (the images on disk), labelled by their largest object.

    Args:
        **kwargs: Fields of :class:`COCOConfig` (``name`` excluded).

    Returns:
        Splits with ``image`` ``[N, 3, S, S]`` and ``text`` ``[N, L]`` token ids.
    """
    config = COCOConfig(**kwargs)
    config.validate()
    start = time.perf_counter()
    data_dir = resolve_data_dir(config.data_dir)
    pairs = read_coco(data_dir / config.folder, config.splits, config.annotation_dirs, config.label)
    skipped = SkippedFiles("coco")
    if config.on_error == "skip":
        pairs = _drop_unreadable(pairs, skipped)
    pairs = _drop_duplicates(pairs, config.on_error, skipped, f"COCO in {data_dir}")
    skipped.report()
    splits = image_text_splits(
        pairs,
        "coco",
        config.image_size,
        config.tokenizer,
        config.max_length,
        config.captions_per_image,
        config.val_fraction,
        config.test_fraction,
        config.seed,
        config.prompts,
    )
    splits.info = replace(
        splits.info, skipped=skipped.as_info(), build_seconds=time.perf_counter() - start
    )
    return splits


@dataclass
class ManifestConfig(_ImageCaptionConfig):
    """Configuration of ``data=manifest`` (open_clip-style CSV/TSV/JSONL of image + caption).

    Attributes:
        name: Dataset name.
        data_dir: Data directory, used when ``path`` is relative.
        path: The manifest file (``.csv``, ``.tsv`` or ``.jsonl``); image paths in it are
            relative to the manifest's folder unless absolute.
        img_key: Column of the image path (open_clip: ``filepath``).
        caption_key: Column of the caption (open_clip: ``title``).
        label_key: Column of the class label (names or integers); empty: no labels.
        separator: Column separator for CSV/TSV (empty: ``,`` for .csv, tab for .tsv).
        image_size: Side of the resized images.
        tokenizer: ``minilm`` or a local Hugging Face tokenizer folder.
        max_length: Token sequence length.
        captions_per_image: Training rows per image.
        val_fraction: Fraction of images for validation.
        test_fraction: Fraction of images for test.
        prompts: Zero-shot prompt templates.
        seed: Seed of the split.
        on_error: ``raise`` (default): a missing or unreadable image file is an error naming
            it; ``skip``: drop such images, warn with their count and record them in
            ``info.skipped``.
    """

    name: str = "manifest"
    path: str = ""
    img_key: str = "filepath"
    caption_key: str = "title"
    label_key: str = ""
    separator: str = ""


def _read_manifest(path: Path, separator: str) -> pd.DataFrame:
    if not path.is_file():
        raise MissingDataError(
            f"Manifest {path} does not exist; set data.path= to a .csv/.tsv/.jsonl file of "
            "image paths and captions (relative paths are resolved against data.data_dir, "
            "$MODALAB_DATA or ~/.modalab/data)."
        )
    try:
        if path.suffix == ".jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        sep = separator or ("\t" if path.suffix == ".tsv" else ",")
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as error:
        raise CorruptDataError(f"{path}: cannot be parsed as a manifest ({error}).") from None


@DATASETS.register("manifest", config=ManifestConfig)
def make_manifest(**kwargs: Any) -> Splits:
    """Users' own image–caption pairs from an open_clip-style CSV/TSV/JSONL manifest.

    Args:
        **kwargs: Fields of :class:`ManifestConfig` (``name`` excluded).

    Returns:
        Splits with ``image`` ``[N, 3, S, S]`` and ``text`` ``[N, L]`` token ids. Without a
        label column every label is unobserved (``num_classes`` 1; probes are skipped).
    """
    config = ManifestConfig(**kwargs)
    config.validate()
    if not config.path:
        raise ValueError("data.path must name the manifest file (.csv, .tsv or .jsonl).")
    start = time.perf_counter()
    path = Path(config.path).expanduser()
    if not path.is_absolute():
        path = resolve_data_dir(config.data_dir) / path
    table = _read_manifest(path, config.separator)
    if len(table) == 0:
        raise CorruptDataError(
            f"{path}: the manifest has no rows; it needs one row per image–caption pair."
        )
    needed = [config.img_key, config.caption_key] + ([config.label_key] if config.label_key else [])
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise CorruptDataError(
            f"{path}: no column(s) {missing}; it has {list(table.columns)}. Set data.img_key=, "
            "data.caption_key= or data.label_key= to its column names."
        )
    grouped: dict[str, tuple[list[str], str | None]] = {}
    for row in table.itertuples(index=False):
        record = row._asdict()
        image = str(record[config.img_key])
        label = str(record[config.label_key]) if config.label_key else None
        captions, previous = grouped.setdefault(image, ([], label))
        if label != previous:
            raise CorruptDataError(f"{path}: image {image} has two labels, {previous} and {label}.")
        captions.append(str(record[config.caption_key]))
    images = list(grouped)
    paths = [Path(p) if Path(p).is_absolute() else path.parent / p for p in images]
    skipped = SkippedFiles("manifest")
    if config.on_error == "skip":
        kept = []
        for image, image_path in zip(images, paths, strict=True):
            try:
                load_images([image_path], 8)
            except (MissingDataError, CorruptDataError) as error:
                skipped.add(image_path, error)
            else:
                kept.append(image)
        if not kept:
            raise MissingDataError(
                f"{path}: data.on_error=skip skipped every image ({skipped.count}), e.g. "
                f"{skipped.errors[:3]}."
            )
        skipped.report()
        images = kept
        paths = [Path(p) if Path(p).is_absolute() else path.parent / p for p in images]
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        raise MissingDataError(
            f"{path}: {len(absent)} image file(s) listed in the manifest do not exist, e.g. "
            f"{absent[:3]}. Fix the paths, or set data.on_error=skip to drop them (counted)."
        )
    labels = [grouped[i][1] for i in images]
    if config.label_key:
        values = sorted({str(v) for v in labels})
        if all(v.lstrip("-").isdigit() for v in values):
            values = sorted(values, key=int)
        label_ids = np.array([values.index(str(v)) for v in labels])
        class_names = values
    else:
        label_ids = np.full(len(images), -1)
        class_names = []
    pairs = _Pairs(paths, [grouped[i][0] for i in images], label_ids, class_names, images)
    if not config.label_key:
        # No labels at all: split every image (all unlabelled) as if labelled, label 0.
        pairs.label = np.zeros(len(images), dtype=np.int64)
    pairs = _drop_duplicates(pairs, config.on_error, skipped, str(path))
    skipped.report()
    splits = image_text_splits(
        pairs,
        "manifest",
        config.image_size,
        config.tokenizer,
        config.max_length,
        config.captions_per_image,
        config.val_fraction,
        config.test_fraction,
        config.seed,
        config.prompts,
    )
    if not config.label_key:
        for split in (splits.train, splits.val, splits.test):
            split.label_observed = torch.zeros_like(split.label_observed)
    splits.info = replace(
        splits.info,
        class_prompt_tokens=splits.info.class_prompt_tokens if config.label_key else None,
        manifest=str(path),
        skipped=skipped.as_info(),
        build_seconds=time.perf_counter() - start,
    )
    return splits


SOURCES.register("coco", "COCO 2017 captions, instances and val images")(
    DataSource(
        name="coco",
        folder="coco",
        description="COCO 2017 captions/instances annotations and val2017 images",
        files=(
            DataFile("annotations/captions_val2017.json"),
            DataFile("annotations/instances_val2017.json"),
            DataFile("annotations/captions_train2017.json", required=False),
            DataFile("annotations/instances_train2017.json", required=False),
        ),
        remotes=(
            # SHA-256 as published by TensorFlow Datasets
            # (tensorflow/datasets, tensorflow_datasets/url_checksums/coco.txt).
            RemoteFile(
                ("https://images.cocodataset.org/annotations/annotations_trainval2017.zip",),
                "annotations_trainval2017.zip",
                extract="zip:annotations->annotations",
                sha256="113a836d90195ee1f884e704da6304dfaaecff1f023f49b6ca93c4aaae470268",
            ),
            RemoteFile(
                ("https://images.cocodataset.org/zips/val2017.zip",),
                "val2017.zip",
                extract="zip:val2017->val2017",
                sha256="4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05",
            ),
        ),
        citation="T.-Y. Lin et al., ECCV 2014; X. Chen et al., Microsoft COCO Captions, 2015",
        licence="annotations CC BY 4.0; images under their Flickr licences",
    )
)
