"""CREMA-D: name parsing on the real metadata, manifest-checked download, OGM-GE split."""

from __future__ import annotations

import csv
import dataclasses
import functools
import gzip
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from _real_data import shared_data_dir
from modalab.data.cremad import (
    CREMAD_EMOTIONS,
    cremad_source,
    download_cremad,
    make_cremad,
    ogm_ge_split,
    parse_clip_name,
    read_manifest,
)
from modalab.data.files import (
    SOURCES,
    CorruptDataError,
    MissingDataError,
    download_source,
    verify_source,
)


@pytest.fixture(scope="module")
def meta() -> Path:
    return shared_data_dir("crema_d_manifest") / "crema_d_manifest"


def _column(path: Path, name: str) -> list[str]:
    with open(path, newline="") as handle:
        return [row[name] for row in csv.DictReader(handle)]


def test_every_real_clip_name_parses(meta):
    names = _column(meta / "SentenceFilenames.csv", "Filename")
    assert len(names) == len(set(names)) == 7442
    clips = [parse_clip_name(n) for n in names]
    # The summary table of crowd ratings lists the same clips.
    assert {c.name for c in clips} == set(_column(meta / "summaryTable.csv", "FileName"))
    # Actors: exactly the 91 of the demographics table.
    actors = {int(a) for a in _column(meta / "VideoDemographics.csv", "ActorID")}
    assert {c.actor for c in clips} == actors and len(actors) == 91
    assert len({c.sentence for c in clips}) == 12
    # Emotion counted independently with a regular expression on the raw names.
    for emotion in CREMAD_EMOTIONS:
        expected = sum(
            bool(re.fullmatch(rf"\d{{4}}_[A-Z]{{3}}_{emotion}_[A-Z]{{2}}", n)) for n in names
        )
        assert sum(c.emotion == emotion for c in clips) == expected > 1000
    # The README: only "It's eleven o'clock" (IEO) was recorded at stated intensity levels.
    assert {c.level for c in clips if c.sentence != "IEO"} == {"XX"}
    assert {c.level for c in clips if c.sentence == "IEO"} >= {"LO", "MD", "HI"}


@pytest.mark.parametrize(
    "bad", ["1001_DFA_ANG", "0999_DFA_ANG_XX", "1001_XYZ_ANG_XX", "1001_DFA_JOY_XX", "x_DFA_ANG_XX"]
)
def test_bad_names_are_rejected_with_the_expected_form(bad):
    with pytest.raises(ValueError, match="ACTOR_SENTENCE_EMOTION_LEVEL"):
        parse_clip_name(bad)


def test_packaged_manifest_and_ogm_ge_split(meta):
    packaged = read_manifest()
    shared = read_manifest(meta / "LFS_MANIFEST.tsv")
    assert packaged == shared and len(packaged) == 3 * 7442
    wav = [e for e in packaged if e.path.startswith("AudioWAV/")]
    assert round(sum(e.size for e in wav) / 1e6, 1) == 605.9  # as the data README states
    names = [parse_clip_name(e.path).name for e in wav]
    split = ogm_ge_split(names)
    assert sum(v == "test" for v in split.values()) == 744  # OGM-GE: 6,698 / 744
    assert sum(v == "train" for v in split.values()) == 6698
    # The packaged test list's labels are the emotions of the names (OGM-GE's csv format).
    from importlib import resources

    text = resources.files("modalab.data").joinpath("cremad_meta/ogm_ge_test.csv").read_text()
    for line in text.split():
        name, label = line.split(",")
        assert parse_clip_name(name).emotion == label


# ---------------------------------------------------------------- download, end to end (fake)


def _fake_media(tmp_path: Path, per_emotion_test: int = 1, per_emotion_train: int = 4):
    """Tiny 16 kHz WAV files named after real clips, served from a local folder."""
    test_names = [
        line.split(",")[0]
        for line in (
            Path(__file__).resolve().parents[1] / "src/modalab/data/cremad_meta/ogm_ge_test.csv"
        )
        .read_text()
        .split()
    ]
    chosen: list[str] = []
    for emotion in CREMAD_EMOTIONS:
        tests = [n for n in test_names if f"_{emotion}_" in n][:per_emotion_test]
        trains = [
            f"{1001 + k}_DFA_{emotion}_XX"
            for k in range(40)
            if f"{1001 + k}_DFA_{emotion}_XX" not in test_names
        ][:per_emotion_train]
        chosen += tests + trains
    served = tmp_path / "served"
    (served / "AudioWAV").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["path\tsha256\tsize"]
    for name in chosen:
        path = served / "AudioWAV" / f"{name}.wav"
        sf.write(path, rng.uniform(-0.3, 0.3, 8000).astype(np.float32), 16000, subtype="PCM_16")
        data = path.read_bytes()
        lines.append(f"AudioWAV/{name}.wav\t{hashlib.sha256(data).hexdigest()}\t{len(data)}")
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("\n".join(lines) + "\n")
    return served, manifest, chosen, set(test_names)


def test_download_checks_every_file_then_builds_the_dataset(tmp_path):
    served, manifest, chosen, test_names = _fake_media(tmp_path)
    data_dir = tmp_path / "data"
    entries = read_manifest(manifest)
    fetch = functools.partial(
        download_cremad, manifest=entries, base_url=served.as_uri() + "/", log=lambda m: None
    )
    assert fetch(data_dir, ["AudioWAV"]) == {"downloaded": len(chosen), "present": 0}
    for entry in entries:
        got = (data_dir / "crema-d" / entry.path).read_bytes()
        assert hashlib.sha256(got).hexdigest() == entry.sha256
    assert fetch(data_dir, ["AudioWAV"]) == {"downloaded": 0, "present": len(chosen)}

    splits = make_cremad(data_dir=str(data_dir), manifest=str(manifest), val_fraction=0.5)
    assert splits.num_classes == 6 and splits.modalities == ("audio",)
    clips = splits.info.extra["clips"]
    test = {clips[i] for i in splits.test.index.tolist()}
    assert test == {n for n in chosen if n in test_names} and len(test) == 6
    assert splits.info.sizes == {"train": 12, "val": 12, "test": 6}
    frames = 3 * 16000 // 160 + 1  # 3 s at a 10 ms hop, centred STFT
    assert splits.train.inputs["audio"].shape == (12, 1, 64, frames)
    for split in (splits.train, splits.val, splits.test):
        for i, y in zip(split.index.tolist(), split.label.tolist()):
            assert CREMAD_EMOTIONS[y] == clips[i].split("_")[2]
    assert np.bincount(splits.val.label.numpy(), minlength=6).tolist() == [2] * 6  # stratified


def test_checksum_mismatch_is_an_error_and_nothing_is_saved(tmp_path):
    served, manifest, chosen, _ = _fake_media(tmp_path)
    victim = served / "AudioWAV" / f"{chosen[3]}.wav"
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    victim.write_bytes(bytes(data))
    data_dir = tmp_path / "data"
    with pytest.raises(CorruptDataError, match=chosen[3]) as error:
        download_cremad(
            data_dir,
            ["AudioWAV"],
            manifest=read_manifest(manifest),
            base_url=served.as_uri() + "/",
            log=lambda m: None,
        )
    assert "SHA-256" in str(error.value)
    assert not (data_dir / "crema-d" / "AudioWAV" / victim.name).exists()
    leftovers = [p.name for p in (data_dir / "crema-d" / "AudioWAV").iterdir()]
    assert not [n for n in leftovers if n.endswith(".tmp")]


def test_unreachable_url_is_a_missing_data_error(tmp_path):
    _, manifest, _, _ = _fake_media(tmp_path)
    with pytest.raises(MissingDataError, match="Could not download"):
        download_cremad(
            tmp_path / "data",
            ["AudioWAV"],
            manifest=read_manifest(manifest),
            base_url=(tmp_path / "nowhere").as_uri() + "/",
            log=lambda m: None,
        )


def test_the_data_download_hook_runs_the_manifest_downloader(tmp_path):
    served, manifest, chosen, _ = _fake_media(tmp_path)
    source = SOURCES.get("crema-d")
    entries = read_manifest(manifest)

    def fake_download(data_dir: Path, log) -> None:
        download_cremad(data_dir, ["AudioWAV"], log, entries, served.as_uri() + "/")

    fake = cremad_source(entries, fake_download)
    report = download_source(fake, tmp_path / "data", log=lambda m: None)
    assert len(report) == len(chosen)
    assert {r.status for r in report} == {"unchecked"}  # present, SHA-256 checked by `check`
    # The real source checks the same files against the real manifest: these fakes are corrupt.
    real = dataclasses.replace(source, files=fake.files)
    assert {r.status for r in verify_source(real, tmp_path / "data")} == {"corrupt"}
    (tmp_path / "data/crema-d" / entries[0].path).write_bytes(b"RIFF-not-the-file")
    broken = {r.path.name: r.status for r in verify_source(fake, tmp_path / "data")}
    assert broken[Path(entries[0].path).name] == "corrupt"
    fixed = {r.path.name: r.status for r in download_source(fake, tmp_path / "data", print)}
    assert fixed[Path(entries[0].path).name] == "unchecked"  # re-downloaded


def test_missing_audio_and_frames_say_how_to_get_them(tmp_path):
    _, manifest, _, _ = _fake_media(tmp_path)
    with pytest.raises(MissingDataError, match="modalab data download crema-d"):
        make_cremad(data_dir=str(tmp_path / "empty"), manifest=str(manifest))
    with pytest.raises(MissingDataError, match="ffmpeg"):
        make_cremad(data_dir=str(tmp_path / "empty"), manifest=str(manifest), modalities=["visual"])


def test_visual_frames_are_read_when_extracted(tmp_path):
    from PIL import Image

    served, manifest, chosen, _ = _fake_media(tmp_path)
    data_dir = tmp_path / "data"
    download_cremad(
        data_dir, ["AudioWAV"], lambda m: None, read_manifest(manifest), served.as_uri() + "/"
    )
    for k, name in enumerate(chosen):
        folder = data_dir / "crema-d" / "frames" / name
        folder.mkdir(parents=True)
        for j in range(3):  # the middle frame (01) is the one read
            Image.new("RGB", (40, 30), (10 * k, 100 if j == 1 else 0, 0)).save(folder / f"0{j}.png")
    splits = make_cremad(
        data_dir=str(data_dir),
        manifest=str(manifest),
        modalities=["audio", "visual"],
        val_fraction=0.5,
        image_size=16,
    )
    visual = splits.test.inputs["visual"]
    assert visual.shape == (6, 3, 16, 16)
    assert np.allclose(visual[:, 1].numpy(), 100 / 255, atol=1e-6)
    k = [chosen.index(splits.info.extra["clips"][i]) for i in splits.test.index.tolist()]
    assert np.allclose(visual[:, 0, 0, 0].numpy(), np.array(k) * 10 / 255, atol=1e-6)


def test_packaged_manifest_is_the_gzipped_upstream_file(meta):
    from importlib import resources

    packaged = resources.files("modalab.data").joinpath("cremad_meta/LFS_MANIFEST.tsv.gz")
    assert gzip.decompress(packaged.read_bytes()) == (meta / "LFS_MANIFEST.tsv").read_bytes()
    licence = resources.files("modalab.data").joinpath("cremad_meta/LICENSE.txt").read_text()
    assert "Open Database License" in licence


@pytest.mark.parametrize(
    "text",
    [
        "name\tdigest\n",  # wrong columns
        "path\tsha256\tsize\nAudioWAV/a.wav\tnot-a-digest\t10\n",
        "path\tsha256\tsize\nAudioWAV/a.wav\t" + "ab" * 32 + "\tten\n",
    ],
)
def test_malformed_manifest_is_a_corrupt_data_error(tmp_path, text):
    path = tmp_path / "m.tsv"
    path.write_text(text)
    with pytest.raises(CorruptDataError, match=r"m\.tsv"):
        read_manifest(path)
