"""Downloads and archives: HTTPS only, a published checksum for every file, extraction that
never writes outside its target folder (crafted zip and tar archives)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from modalab.data.files import (
    SOURCES,
    DataFile,
    DataSource,
    MissingDataError,
    RemoteFile,
    UnsafeArchiveError,
    download_source,
    safe_extract,
)


def _zip(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16) | 0  # a symbolic link
            zf.writestr(info, "/etc/passwd")
    return path


def _tar(path: Path, members: dict[str, bytes], kind: str = "file", target: str = "") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, target
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, target
            else:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if kind == "file" else None)
    return path


def _files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_safe_extract_writes_ordinary_members(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "ok.zip", {"data/a.txt": b"a", "data/sub/b.txt": b"b", "x": b"x"})
    written = safe_extract(archive, "data", tmp_path / "out")
    assert sorted(p.name for p in written) == ["a.txt", "b.txt"]
    assert (tmp_path / "out" / "sub" / "b.txt").read_bytes() == b"b"
    tar = _tar(tmp_path / "ok.tar.gz", {"data/c.txt": b"c"})
    safe_extract(tar, "data", tmp_path / "out2")
    assert (tmp_path / "out2" / "c.txt").read_bytes() == b"c"


@pytest.mark.parametrize(
    "name",
    [
        "../escape.txt",  # zip slip one level up
        "data/../../../../escape.txt",  # four levels up, under the prefix
        "data/../../escape.txt",
        "/tmp/absolute.txt",  # absolute path
        "C:/windows.txt",  # drive-letter path
    ],
)
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_members_outside_the_target_folder_are_refused(
    tmp_path: Path, name: str, kind: str
) -> None:
    root = tmp_path / "a" / "b" / "c" / "d"
    root.mkdir(parents=True)
    members = {"data/fine.txt": b"fine", name: b"evil"}
    make = _zip if kind == "zip" else _tar
    archive = make(root / f"evil.{kind}", members)
    before = _files_under(tmp_path)
    with pytest.raises(UnsafeArchiveError, match=r"refusing") as caught:
        safe_extract(archive, "data", root / "out")
    assert name.split("/")[-1] in str(caught.value) or name in str(caught.value)
    assert _files_under(tmp_path) == before  # nothing written, not even the fine member
    assert not Path("/tmp/absolute.txt").exists() or name != "/tmp/absolute.txt"


def test_links_in_archives_are_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "link.zip", {"data/a.txt": b"a"}, links=("data/passwd",))
    with pytest.raises(UnsafeArchiveError, match=r"'data/passwd' is a link"):
        safe_extract(archive, "data", tmp_path / "out")
    for kind in ("symlink", "hardlink"):
        tar = _tar(tmp_path / f"{kind}.tar.gz", {"data/passwd": b""}, kind, "/etc/passwd")
        with pytest.raises(UnsafeArchiveError, match=r"link or device"):
            safe_extract(tar, "data", tmp_path / f"out-{kind}")
    assert not (tmp_path / "out").exists()


def test_truncated_archive_is_a_data_error(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "t.zip", {"data/a.txt": os.urandom(4096)})
    archive.write_bytes(archive.read_bytes()[:100])
    with pytest.raises(Exception, match=r"t.zip"):
        safe_extract(archive, "data", tmp_path / "out")


def _source(remote: RemoteFile, **kwargs: object) -> DataSource:
    return DataSource(
        name="toy",
        folder="toy",
        description="toy",
        files=(DataFile("payload/a.txt"),),
        remotes=(remote,),
        citation="",
        licence="",
        **kwargs,  # type: ignore[arg-type]
    )


def test_download_refuses_plain_http_and_missing_checksums(tmp_path: Path) -> None:
    http = RemoteFile(("http://example.invalid/x.zip",), "x.zip", sha256="0" * 64)
    with pytest.raises(MissingDataError, match=r"refused, not HTTPS"):
        download_source(_source(http), tmp_path, log=lambda m: None)
    unverified = RemoteFile(("https://example.invalid/x.zip",), "x.zip", extract="zip:p->p")
    with pytest.raises(MissingDataError, match=r"publishes no checksum for \['x.zip'\]"):
        download_source(_source(unverified), tmp_path, log=lambda m: None)
    assert _files_under(tmp_path) == set()  # nothing downloaded or written


def test_download_checks_sha256_then_extracts_safely(tmp_path: Path) -> None:
    served = _zip(tmp_path / "served.zip", {"payload/a.txt": b"hello"})
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    good = RemoteFile((served.as_uri(),), "p.zip", extract="zip:payload->payload", sha256=digest)
    report = download_source(_source(good), tmp_path / "data", log=lambda m: None)
    assert [r.status for r in report] == ["unchecked"]
    assert (tmp_path / "data" / "toy" / "payload" / "a.txt").read_bytes() == b"hello"
    assert not (tmp_path / "data" / "toy" / "p.zip").exists()  # the archive is removed
    bad = RemoteFile((served.as_uri(),), "p.zip", extract="zip:payload->payload", sha256="1" * 64)
    with pytest.raises(MissingDataError, match=r"sha256 [0-9a-f]{64} does not match"):
        download_source(_source(bad), tmp_path / "data2", log=lambda m: None)
    assert _files_under(tmp_path / "data2") == set()


def test_every_registered_remote_is_https_with_a_checksum() -> None:
    for name in SOURCES.names():
        source = SOURCES.get(name)
        for remote in source.remotes:
            assert remote.urls[0].startswith("https://"), (name, remote.urls[0])
            assert remote.md5 or remote.sha256 or source.content_sha256, (name, remote.filename)
