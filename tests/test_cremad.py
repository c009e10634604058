"""CREMA-D: name parsing on the real metadata, manifest-checked download, OGM-GE split."""

from __future__ import annotations

import csv
import functools
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
    manifest_from_lfs_pointers,
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


def test_manifest_of_the_data_directory_and_ogm_ge_split(meta):
    found = read_manifest(data_dir=meta.parent)  # <data_dir>/crema_d_manifest/LFS_MANIFEST.tsv
    named = read_manifest(meta / "LFS_MANIFEST.tsv")
    assert found == named and len(found) == 3 * 7442
    wav = [e for e in found if e.path.startswith("AudioWAV/")]
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
    data_dir = tmp_path / "data"
    report = download_source(fake, data_dir, log=lambda m: None)
    assert len(report) == len(chosen)
    assert {r.status for r in report} == {"ok"}  # each file's SHA-256 equals the manifest's
    (data_dir / "crema-d" / entries[0].path).write_bytes(b"RIFF-not-the-file")
    broken = {r.path.name: r.status for r in verify_source(fake, data_dir)}
    assert broken[Path(entries[0].path).name] == "differs"
    fixed = {r.path.name: r.status for r in download_source(fake, data_dir, print)}
    assert fixed[Path(entries[0].path).name] == "ok"  # re-downloaded
    # The registered source lists the files of the manifest in the data directory.
    assert verify_source(source, data_dir)[0].status == "missing"  # no manifest there yet
    listed = data_dir / "crema_d_manifest" / "LFS_MANIFEST.tsv"
    listed.parent.mkdir()
    listed.write_text(manifest.read_text())
    assert {r.status for r in verify_source(source, data_dir)} == {"ok"}
    wrong = entries[1].sha256[::-1]
    listed.write_text(manifest.read_text().replace(entries[1].sha256, wrong))
    statuses = {r.path.name: r.status for r in verify_source(source, data_dir)}
    assert statuses.pop(Path(entries[1].path).name) == "differs"
    assert set(statuses.values()) == {"ok"}


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


def _pointer(entry) -> bytes:
    # The three lines of a Git LFS pointer (git-lfs docs/spec.md), as a checkout without the
    # media holds them in place of each file.
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{entry.sha256}\n"
        f"size {entry.size}\n"
    ).encode()


def test_manifest_built_from_lfs_pointers_is_the_upstream_file_byte_for_byte(
    meta, tmp_path, capsys
):
    from modalab.cli.main import main

    upstream = meta / "LFS_MANIFEST.tsv"
    checkout = tmp_path / "CREMA-D"
    for entry in read_manifest(upstream):
        path = checkout / entry.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_pointer(entry))
    (checkout / "README.md").write_text("not a media folder: ignored")
    data_dir = tmp_path / "data"
    argv = ["data", "manifest", "crema-d", "--from", str(checkout), "--data-dir", str(data_dir)]
    assert main(argv) == 0
    written = data_dir / "crema_d_manifest" / "LFS_MANIFEST.tsv"
    assert written.read_bytes() == upstream.read_bytes()
    out = capsys.readouterr().out
    assert "AudioWAV 7,442 files (605.9 MB)" in out  # the data README's figures


def test_a_checkout_with_media_instead_of_pointers_is_refused(tmp_path):
    checkout = tmp_path / "CREMA-D"
    (checkout / "AudioWAV").mkdir(parents=True)
    good = checkout / "AudioWAV" / "1001_DFA_ANG_XX.wav"
    good.write_bytes(
        b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 12\n"
    )
    assert [(e.path, e.size) for e in manifest_from_lfs_pointers(checkout)] == [
        ("AudioWAV/1001_DFA_ANG_XX.wav", 12)
    ]
    media = checkout / "AudioWAV" / "1001_DFA_DIS_XX.wav"
    media.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(CorruptDataError, match=r"1001_DFA_DIS_XX\.wav.*GIT_LFS_SKIP_SMUDGE"):
        manifest_from_lfs_pointers(checkout)
    with pytest.raises(MissingDataError, match="AudioWAV"):
        manifest_from_lfs_pointers(tmp_path / "elsewhere")


def test_absent_manifest_is_one_screen_saying_how_to_get_it(tmp_path, capsys):
    from modalab.cli.main import main

    empty = tmp_path / "data"
    with pytest.raises(MissingDataError) as error:
        read_manifest(data_dir=empty)
    message = str(error.value)
    assert str(empty / "crema_d_manifest" / "LFS_MANIFEST.tsv") in message
    assert "GIT_LFS_SKIP_SMUDGE=1" in message and "modalab data manifest crema-d" in message
    with pytest.raises(MissingDataError, match="crema_d_manifest"):
        make_cremad(data_dir=str(empty))
    for action in ("verify", "download"):  # download stops before any network access
        assert main(["data", action, "crema-d", "--data-dir", str(empty)]) == 1
        text = capsys.readouterr().out
        assert "Traceback" not in text and "GIT_LFS_SKIP_SMUDGE=1" in text, text
        assert len(text.strip().splitlines()) <= 30, text
    assert not list(empty.rglob("*.wav"))
    assert main(["data", "manifest", "avmnist", "--from", str(tmp_path)]) == 2
    assert main(["data", "manifest", "crema-d", "--data-dir", str(empty)]) == 2


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
