"""``cremad``: CREMA-D audio-visual emotion clips, a verified download and the OGM-GE split.

CREMA-D (Cao, Cooper, Keutmann, Gur, Nenkova & Verma, "CREMA-D: Crowd-sourced Emotional
Multimodal Actors Dataset", IEEE Trans. Affective Computing 2014) holds 7,442 clips of 91
actors speaking 12 sentences with 6 emotions. It is the main dataset of the modality-imbalance
literature (OGM-GE, Peng et al., "Balanced Multimodal Learning via On-the-fly Gradient
Modulation", CVPR 2022). Clip names are ``{actor}_{sentence}_{emotion}_{level}``, e.g.
``1001_DFA_ANG_XX`` (:func:`parse_clip_name`).

The media are Git LFS objects of the GitHub repository CheyneyComputerScience/CREMA-D. Their
per-file manifest (path, SHA-256, size of every ``AudioWAV/*.wav``, ``AudioMP3/*.mp3`` and
``VideoFlash/*.flv``, read from the repository's LFS pointers; ODbL/DbCL) is data, not code:
modalab reads it from the data directory, ``<data_dir>/crema_d_manifest/LFS_MANIFEST.tsv``
(:func:`read_manifest`), and builds it from a checkout of the repository's pointer files when
it is absent (:func:`manifest_from_lfs_pointers`, ``modalab data manifest crema-d --from DIR``).
``modalab data download crema-d`` fetches each file over HTTPS from GitHub's LFS media endpoint
(``https://media.githubusercontent.com/media/<owner>/<repo>/<commit>/<path>``) and checks its
size and SHA-256 against the manifest before it is moved into place; a mismatch is an error
naming the file (:func:`download_cremad`).

The split is OGM-GE's (``data/CREMAD/{train,test}.csv`` of GeWu-Lab/OGM-GE_CVPR2022): 6,698
training and 744 test clips, drawn at random over clips (actors appear in both); the 744 test
names ship with modalab (``cremad_meta/ogm_ge_test.csv``), the training split is every other
clip. OGM-GE has no validation split: a stratified ``val_fraction`` of the training clips is
held out. Labels follow OGM-GE's order ``NEU, HAP, SAD, FEA, DIS, ANG``.

``data=cremad`` reads the WAV files (16 kHz mono) as log-mel spectrograms. Video needs frames
decoded from the ``.flv`` files, which modalab does not do (no video decoder dependency): the
``visual`` modality reads pre-extracted frames ``frames/<clip>/*.jpg`` (e.g. OGM-GE's
``video_preprocessing.py`` or ``ffmpeg -i X.flv -vf fps=1 frames/X/%02d.jpg``) and says how to
make them when they are absent.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from modalab.data.audio import fix_length, log_mel_spectrogram, read_wav
from modalab.data.files import (
    SOURCES,
    CorruptDataError,
    DataFile,
    DataSource,
    MissingDataError,
    atomic_save_bytes,
    file_sha256,
    resolve_data_dir,
)
from modalab.data.registry import DATASETS
from modalab.data.tensor_dataset import DataInfo, MultimodalTensorDataset, Splits

__all__ = [
    "CREMAD_EMOTIONS",
    "CremaDClip",
    "CremaDConfig",
    "ManifestEntry",
    "cremad_source",
    "download_cremad",
    "make_cremad",
    "manifest_from_lfs_pointers",
    "manifest_path",
    "ogm_ge_split",
    "parse_clip_name",
    "read_manifest",
    "write_manifest",
]

CREMAD_REPO = "CheyneyComputerScience/CREMA-D"
CREMAD_COMMIT = "1658cd342dff90010aa843eaeebd53610a08b1dc"
CREMAD_MEDIA_URL = f"https://media.githubusercontent.com/media/{CREMAD_REPO}/{CREMAD_COMMIT}/"
CREMAD_SAMPLE_RATE = 16000
#: OGM-GE's label order (``class_dict`` of its ``CramedDataset``).
CREMAD_EMOTIONS = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")
CREMAD_SENTENCES = (
    "IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI",
)  # fmt: skip
CREMAD_LEVELS = ("LO", "MD", "HI", "XX")
#: Media folders of the repository; ``download`` fetches the WAV audio and the video.
CREMAD_PARTS = ("AudioWAV", "VideoFlash", "AudioMP3")
DEFAULT_PARTS = ("AudioWAV", "VideoFlash")
_META = "cremad_meta"
_SHA256 = re.compile("[0-9a-f]{64}")
#: Where the manifest lives in the data directory (the layout of the data README).
MANIFEST_FOLDER = "crema_d_manifest"
MANIFEST_NAME = "LFS_MANIFEST.tsv"
#: The first line of a Git LFS pointer file (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md).
_LFS_VERSION = b"version https://git-lfs.github.com/spec/v1"


@dataclass(frozen=True)
class CremaDClip:
    """The fields of a CREMA-D clip name ``{actor}_{sentence}_{emotion}_{level}``.

    Attributes:
        name: The clip name (no extension).
        actor: Actor id, 1001-1091.
        sentence: Three-letter sentence code (``IEO``, ``TIE``, ...).
        emotion: ``ANG``, ``DIS``, ``FEA``, ``HAP``, ``NEU`` or ``SAD``.
        level: Intensity ``LO``, ``MD``, ``HI`` or ``XX`` (unspecified).
    """

    name: str
    actor: int
    sentence: str
    emotion: str
    level: str

    @property
    def label(self) -> int:
        """The class index in OGM-GE's order (:data:`CREMAD_EMOTIONS`)."""
        return CREMAD_EMOTIONS.index(self.emotion)


def parse_clip_name(name: str) -> CremaDClip:
    """Parse a CREMA-D clip name (a path or a name with an extension is accepted).

    Raises:
        ValueError: The name does not follow ``{actor}_{sentence}_{emotion}_{level}`` with the
            codes of the dataset's README.

    Example:
        >>> clip = parse_clip_name("AudioWAV/1001_DFA_ANG_XX.wav")
        >>> clip.actor, clip.sentence, clip.emotion, clip.level, clip.label
        (1001, 'DFA', 'ANG', 'XX', 5)
    """
    stem = Path(name).name.split(".")[0]
    parts = stem.split("_")
    ok = (
        len(parts) == 4
        and parts[0].isdigit()
        and 1001 <= int(parts[0]) <= 1091
        and parts[1] in CREMAD_SENTENCES
        and parts[2] in CREMAD_EMOTIONS
        and parts[3] in CREMAD_LEVELS
    )
    if not ok:
        raise ValueError(
            f"{name!r} is not a CREMA-D clip name: expected ACTOR_SENTENCE_EMOTION_LEVEL with "
            f"actor 1001-1091, sentence in {CREMAD_SENTENCES}, emotion in "
            f"{sorted(CREMAD_EMOTIONS)}, level in {CREMAD_LEVELS} (e.g. 1001_DFA_ANG_XX)."
        )
    return CremaDClip(stem, int(parts[0]), parts[1], parts[2], parts[3])


@dataclass(frozen=True)
class ManifestEntry:
    """One media file of the manifest: ``path`` (``AudioWAV/x.wav``), ``sha256``, ``size``."""

    path: str
    sha256: str
    size: int


def _packaged(name: str) -> bytes:
    return resources.files("modalab.data").joinpath(_META, name).read_bytes()


def manifest_path(data_dir: str | Path | None = None) -> Path:
    """Where the manifest is looked for: ``<data_dir>/crema_d_manifest/LFS_MANIFEST.tsv``.

    Example:
        >>> manifest_path("/data").as_posix()
        '/data/crema_d_manifest/LFS_MANIFEST.tsv'
    """
    return resolve_data_dir(data_dir) / MANIFEST_FOLDER / MANIFEST_NAME


def _how_to_get_manifest(where: Path) -> str:
    return (
        f"CREMA-D's per-file manifest (path, SHA-256 and size of every media file, which "
        f"download, verify and data=cremad check against) is not at {where}.\n"
        f"To get it, either copy the folder {MANIFEST_FOLDER}/ of a data directory that has it, "
        "or build it from the repository's Git LFS pointer files (no media needed, ~24 MB):\n"
        f"  GIT_LFS_SKIP_SMUDGE=1 git clone https://github.com/{CREMAD_REPO}.git\n"
        f"  git -C CREMA-D checkout {CREMAD_COMMIT}\n"
        f"  modalab data manifest crema-d --from CREMA-D --data-dir {where.parent.parent}\n"
        "A manifest elsewhere can be named with data.manifest=FILE."
    )


def read_manifest(
    path: str | Path | None = None, data_dir: str | Path | None = None
) -> list[ManifestEntry]:
    """The per-file manifest (``path``, ``sha256``, ``size`` columns, tab-separated).

    Args:
        path: A manifest ``.tsv`` or ``.tsv.gz``; ``None``: the one of the data directory,
            :func:`manifest_path`.
        data_dir: The data directory (default: ``$MODALAB_DATA``, then ``~/.modalab/data``).

    Raises:
        MissingDataError: The manifest is absent (saying how to get it).
        CorruptDataError: Missing columns, a malformed digest or size.
    """
    where = Path(path).expanduser() if path else manifest_path(data_dir)
    if not where.is_file():
        if path:
            raise MissingDataError(f"data.manifest={path}: no such file.")
        raise MissingDataError(_how_to_get_manifest(where))
    data = where.read_bytes()
    return list(
        _parse_manifest(gzip.decompress(data) if where.suffix == ".gz" else data, str(where))
    )


def manifest_from_lfs_pointers(checkout: str | Path) -> list[ManifestEntry]:
    """Manifest entries read from the Git LFS pointer files of a CREMA-D checkout.

    A repository cloned with ``GIT_LFS_SKIP_SMUDGE=1`` (or GitHub's zip of it) holds, instead of
    each media file, a pointer of three lines: ``version https://git-lfs.github.com/spec/v1``,
    ``oid sha256:<digest>``, ``size <bytes>`` (the Git LFS specification). The digest and size
    are those of the media file itself, so the entries check the downloaded media without
    trusting them.

    Args:
        checkout: The repository folder (holding ``AudioWAV/``, ``AudioMP3/``, ``VideoFlash/``).

    Raises:
        MissingDataError: No media folder in ``checkout``.
        CorruptDataError: A media path holds real media or a malformed pointer (naming it).
    """
    root = Path(checkout).expanduser()
    entries = []
    order = ("AudioWAV", "AudioMP3", "VideoFlash")  # the order of the upstream manifest
    folders = [root / part for part in order if (root / part).is_dir()]
    if not folders:
        raise MissingDataError(
            f"{root} holds none of {list(CREMAD_PARTS)}: expected a checkout of {CREMAD_REPO}."
        )
    for folder in folders:
        for file in sorted(p for p in folder.iterdir() if p.is_file()):
            with open(file, "rb") as handle:
                head = handle.read(1024)
            lines = head.splitlines()
            fields = dict(line.split(b" ", 1) for line in lines[1:] if b" " in line)
            oid, size = fields.get(b"oid", b""), fields.get(b"size", b"")
            digest = oid.decode(errors="replace").removeprefix("sha256:")
            if (
                not lines
                or lines[0] != _LFS_VERSION
                or not oid.startswith(b"sha256:")
                or _SHA256.fullmatch(digest) is None
                or not size.isdigit()
            ):
                raise CorruptDataError(
                    f"{file} is not a Git LFS pointer (version/oid sha256/size lines). A "
                    "checkout with the media pulled cannot vouch for them: clone again with "
                    "GIT_LFS_SKIP_SMUDGE=1 so that the media paths hold their pointers."
                )
            entries.append(ManifestEntry(f"{folder.name}/{file.name}", digest, int(size)))
    return entries


def write_manifest(entries: Sequence[ManifestEntry], path: Path) -> None:
    """Write ``entries`` as a tab-separated ``path sha256 size`` file, atomically, in order."""
    text = "path\tsha256\tsize\n" + "".join(f"{e.path}\t{e.sha256}\t{e.size}\n" for e in entries)

    def write(tmp: Path) -> None:
        tmp.write_text(text)

    atomic_save_bytes(path, write)


def _parse_manifest(raw: bytes, where: str) -> tuple[ManifestEntry, ...]:
    lines = raw.decode().splitlines()
    header = lines[0].split("\t") if lines else []
    if not {"path", "sha256", "size"} <= set(header):
        raise CorruptDataError(f"{where}: expected a TSV with columns path, sha256, size.")
    column = {name: header.index(name) for name in ("path", "sha256", "size")}
    entries = []
    for i, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = line.split("\t")
        try:
            entry = ManifestEntry(
                fields[column["path"]],
                fields[column["sha256"]].lower(),
                int(fields[column["size"]]),
            )
        except (IndexError, ValueError):
            raise CorruptDataError(f"{where}, line {i}: malformed row {line!r}.") from None
        if _SHA256.fullmatch(entry.sha256) is None or entry.size < 0:
            raise CorruptDataError(f"{where}, line {i}: malformed sha256 or size in {line!r}.")
        entries.append(entry)
    return tuple(entries)


def ogm_ge_split(names: Iterable[str]) -> dict[str, str]:
    """Clip name → ``"train"`` or ``"test"`` in OGM-GE's CREMA-D split.

    The 744 test clips are OGM-GE's ``data/CREMAD/test.csv``; every other clip is training (its
    ``train.csv`` is exactly the other 6,698 of the 7,442 clips).

    Example:
        >>> ogm_ge_split(["1041_TIE_NEU_XX", "1001_DFA_ANG_XX"])
        {'1041_TIE_NEU_XX': 'test', '1001_DFA_ANG_XX': 'train'}
    """
    test = {line.split(",")[0] for line in _packaged("ogm_ge_test.csv").decode().split() if line}
    return {n: "test" if n in test else "train" for n in names}


def _urlopen(url: str) -> BinaryIO:
    request = urllib.request.Request(url, headers={"User-Agent": "modalab"})
    return urllib.request.urlopen(request, timeout=60)  # type: ignore[no-any-return]


def download_cremad(
    data_dir: Path,
    parts: Sequence[str] = DEFAULT_PARTS,
    log: Callable[[str], None] = print,
    manifest: Sequence[ManifestEntry] | None = None,
    base_url: str = CREMAD_MEDIA_URL,
    opener: Callable[[str], BinaryIO] = _urlopen,
) -> dict[str, int]:
    """Fetch CREMA-D media into ``data_dir/crema-d/``, each file checked against the manifest.

    A file is streamed to a temporary sibling while its SHA-256 is computed; it is moved into
    place only when its size and digest equal the manifest's. Files already present with the
    right digest are kept.

    Args:
        data_dir: The data directory.
        parts: Media folders to fetch (``AudioWAV``, ``VideoFlash``, ``AudioMP3``).
        log: Progress messages.
        manifest: The entries to fetch (default: the manifest of the data directory,
            :func:`read_manifest`).
        base_url: URL prefix of the media (GitHub's LFS media endpoint at the pinned commit).
        opener: ``url -> readable binary stream`` (urllib by default).

    Returns:
        Counts ``{"downloaded", "present"}``.

    Raises:
        CorruptDataError: A fetched file's size or SHA-256 differs from the manifest.
        MissingDataError: A file could not be fetched.
    """
    unknown = [p for p in parts if p not in CREMAD_PARTS]
    if unknown:
        raise ValueError(f"Unknown CREMA-D parts {unknown}; valid: {list(CREMAD_PARTS)}.")
    listed = manifest if manifest is not None else read_manifest(data_dir=data_dir)
    entries = [e for e in listed if e.path.split("/")[0] in parts]
    root = data_dir / SOURCES.get("crema-d").folder
    counts = {"downloaded": 0, "present": 0}
    for k, entry in enumerate(entries):
        target = root / entry.path
        if target.is_file() and target.stat().st_size == entry.size:
            if file_sha256(target) == entry.sha256:
                counts["present"] += 1
                continue
        url = base_url + entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            size = 0
            with open(fd, "wb", closefd=True) as out:
                try:
                    with opener(url) as response:
                        for chunk in iter(lambda: response.read(1 << 20), b""):
                            digest.update(chunk)
                            size += len(chunk)
                            out.write(chunk)
                except OSError as error:
                    raise MissingDataError(f"Could not download {url}: {error}") from None
            if size != entry.size or digest.hexdigest() != entry.sha256:
                raise CorruptDataError(
                    f"{entry.path} from {url}: {size} bytes with SHA-256 {digest.hexdigest()}, "
                    f"but the manifest says {entry.size} bytes with SHA-256 {entry.sha256}. "
                    "The file was not saved; if the URL served a Git LFS pointer or an error "
                    "page, retry later or fetch the media with `git lfs pull`."
                )
            shutil.move(str(tmp), target)
        finally:
            if tmp.exists():
                tmp.unlink()
        counts["downloaded"] += 1
        if (k + 1) % 500 == 0 or k + 1 == len(entries):
            log(f"crema-d: {k + 1}/{len(entries)} files checked")
    log(f"crema-d: {counts['downloaded']} downloaded, {counts['present']} already present")
    return counts


@dataclass
class CremaDConfig:
    """Configuration of ``data=cremad``.

    Attributes:
        name: Dataset name.
        data_dir: Data directory holding ``crema-d/AudioWAV/*.wav`` (and ``crema-d/frames/``).
        modalities: ``audio`` and/or ``visual`` (pre-extracted frames, see the module docs).
        val_fraction: Fraction of OGM-GE's training clips held out for validation (stratified).
        audio_seconds: Waveforms are centre-cropped or zero-padded to this length.
        n_mels: Mel bands of the log-mel spectrogram (25 ms windows, 10 ms hop at 16 kHz).
        image_size: Side of the visual frames after resizing.
        manifest: A manifest ``.tsv`` listing the clips to use (empty: the data directory's
            ``crema_d_manifest/LFS_MANIFEST.tsv``, all 7,442 clips).
        seed: Seed of the validation hold-out.
    """

    name: str = "cremad"
    data_dir: str = ""
    modalities: list[str] = field(default_factory=lambda: ["audio"])
    val_fraction: float = 0.1
    audio_seconds: float = 3.0
    n_mels: int = 64
    image_size: int = 64
    manifest: str = ""
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field."""
        bad = [m for m in self.modalities if m not in ("audio", "visual")]
        if bad or not self.modalities:
            raise ValueError(
                f"data.modalities={list(self.modalities)} is invalid: expected audio and/or visual."
            )
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}.")
        if self.audio_seconds <= 0 or self.n_mels < 8 or self.image_size < 8:
            raise ValueError("Need data.audio_seconds > 0, data.n_mels >= 8, data.image_size >= 8.")


def _read_frame(folder: Path, size: int) -> np.ndarray:
    from PIL import Image

    frames = sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png"))
    if not frames:
        raise MissingDataError(f"{folder} holds no .jpg/.png frames.")
    try:
        with Image.open(frames[len(frames) // 2]) as image:
            rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except OSError as error:
        raise CorruptDataError(f"{frames[len(frames) // 2]}: unreadable image ({error}).") from None
    return np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0


@DATASETS.register("cremad", config=CremaDConfig, sources=("crema-d",))
def make_cremad(**kwargs: Any) -> Splits:
    """CREMA-D emotion clips with OGM-GE's train/test split (6 classes).

    Args:
        **kwargs: Fields of :class:`CremaDConfig` (``name`` excluded).

    Returns:
        Splits with ``audio`` ``[N, 1, n_mels, frames]`` (log-mel, standardised with the
        training clips' statistics) and/or ``visual`` ``[N, 3, S, S]`` (the middle
        pre-extracted frame); ``info`` has the clip names, actors and OGM-GE split.

    Raises:
        MissingDataError: WAV files or frame folders absent (counted, with how to get them).
        CorruptDataError: An unreadable or wrongly sampled WAV file.
    """
    from sklearn.model_selection import train_test_split

    config = CremaDConfig(**kwargs)
    config.validate()
    start = time.perf_counter()
    data_dir = resolve_data_dir(config.data_dir)
    root = data_dir / SOURCES.get("crema-d").folder
    entries = read_manifest(config.manifest or None, data_dir=data_dir)
    clips = [parse_clip_name(e.path) for e in entries if e.path.startswith("AudioWAV/")]
    if not clips:
        raise CorruptDataError("The manifest lists no AudioWAV/*.wav clip.")
    wavs = [root / "AudioWAV" / f"{c.name}.wav" for c in clips]
    missing = [p for p in wavs if not p.is_file()] if "audio" in config.modalities else []
    frames = [root / "frames" / c.name for c in clips]
    missing_frames = [p for p in frames if not p.is_dir()] if "visual" in config.modalities else []
    if missing or missing_frames:
        lines = []
        if missing:
            lines.append(
                f"{len(missing)} of {len(wavs)} WAV files are missing under {root / 'AudioWAV'}"
                f" (e.g. {missing[0].name}); get them with `modalab data download crema-d "
                f"--data-dir {data_dir}` (HTTPS, about 606 MB, each file checked by SHA-256)."
            )
        if missing_frames:
            lines.append(
                f"{len(missing_frames)} of {len(frames)} frame folders are missing under "
                f"{root / 'frames'} (e.g. {missing_frames[0].name}/). modalab does not decode "
                "video: extract frames from VideoFlash/*.flv first, e.g. `ffmpeg -i "
                "VideoFlash/X.flv -vf fps=1 frames/X/%02d.jpg`, or use data.modalities=[audio]."
            )
        raise MissingDataError("CREMA-D (data=cremad): " + "\n".join(lines))
    label = np.array([c.label for c in clips], dtype=np.int64)
    assignment = ogm_ge_split(c.name for c in clips)
    test_rows = np.array([i for i, c in enumerate(clips) if assignment[c.name] == "test"])
    train_pool = np.array([i for i, c in enumerate(clips) if assignment[c.name] == "train"])
    stratify = label[train_pool] if np.bincount(label[train_pool]).min() >= 2 else None
    train_rows, val_rows = train_test_split(
        train_pool, test_size=config.val_fraction, stratify=stratify, random_state=config.seed
    )
    parts = {"train": np.sort(train_rows), "val": np.sort(val_rows), "test": np.sort(test_rows)}
    inputs: dict[str, torch.Tensor] = {}
    if "audio" in config.modalities:
        length = round(config.audio_seconds * CREMAD_SAMPLE_RATE)
        waves = np.stack([fix_length(read_wav(p, CREMAD_SAMPLE_RATE), length) for p in wavs])
        mels = torch.cat(
            [
                log_mel_spectrogram(
                    torch.from_numpy(waves[k : k + 256]),
                    CREMAD_SAMPLE_RATE,
                    n_fft=512,
                    hop_length=160,
                    win_length=400,
                    n_mels=config.n_mels,
                )
                for k in range(0, waves.shape[0], 256)
            ]
        )
        train_mels = mels[torch.from_numpy(parts["train"])]
        mean, std = float(train_mels.mean()), float(train_mels.std()) or 1.0
        inputs["audio"] = ((mels - mean) / std).unsqueeze(1)
    if "visual" in config.modalities:
        inputs["visual"] = torch.from_numpy(
            np.stack([_read_frame(f, config.image_size) for f in frames])
        )
    datasets = {
        split: MultimodalTensorDataset(
            {m: x[torch.from_numpy(rows)] for m, x in inputs.items()},
            torch.from_numpy(label[rows]),
            index=torch.from_numpy(rows),
            num_classes=len(CREMAD_EMOTIONS),
        )
        for split, rows in parts.items()
    }
    info = DataInfo(
        name="cremad",
        sizes={s: len(d) for s, d in datasets.items()},
        class_names=list(CREMAD_EMOTIONS),
        build_seconds=time.perf_counter() - start,
        extra={
            "clips": [c.name for c in clips],
            "actors": {s: sorted({clips[i].actor for i in r}) for s, r in parts.items()},
            "split_protocol": "OGM-GE (CVPR 2022) test.csv; val held out from its train clips",
        },
    )
    return Splits(datasets["train"], datasets["val"], datasets["test"], len(CREMAD_EMOTIONS), info)


def _download_default_parts(data_dir: Path, log: Callable[[str], None]) -> None:
    download_cremad(data_dir, DEFAULT_PARTS, log=log)


def _media_files(entries: Iterable[ManifestEntry]) -> tuple[DataFile, ...]:
    return tuple(
        DataFile(e.path, sha256=e.sha256) for e in entries if e.path.split("/")[0] in DEFAULT_PARTS
    )


def _listed_media(data_dir: Path) -> tuple[DataFile, ...]:
    return _media_files(read_manifest(data_dir=data_dir))


def cremad_source(
    manifest: Sequence[ManifestEntry] | None = None,
    download: Callable[[Path, Callable[[str], None]], None] | None = None,
) -> DataSource:
    """The ``crema-d`` data source: the media of the manifest, each checked by its SHA-256.

    Args:
        manifest: Entries; default: the manifest of the data directory, read when the files
            are listed (:func:`read_manifest`). The source lists the WAV and video files.
        download: The downloader (default: :func:`download_cremad` of the WAV and video files).
    """
    fixed = _media_files(manifest) if manifest is not None else ()
    return DataSource(
        name="crema-d",
        folder="crema-d",
        description="CREMA-D media (AudioWAV, VideoFlash), each checked against its SHA-256",
        files=fixed,
        remotes=(),
        citation="H. Cao et al., CREMA-D, IEEE Trans. Affective Computing 2014",
        licence="ODbL 1.0 / DbCL 1.0",
        download=download or _download_default_parts,
        list_files=None if manifest is not None else _listed_media,
        instructions=(
            f"It fetches every file listed in {MANIFEST_FOLDER}/{MANIFEST_NAME} of the data "
            f"directory from GitHub's Git LFS media of {CREMAD_REPO} and checks its SHA-256."
        ),
    )


SOURCES.register("crema-d", "CREMA-D audio-visual emotion clips (Git LFS media, SHA-256)")(
    cremad_source()
)
