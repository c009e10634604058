"""Where real datasets live on disk, what files they need, and how to fetch and verify them.

A *data source* is one set of original files (MNIST idx files, the Free Spoken Digit Dataset
recordings, a MedMNIST ``.npz``, COCO captions and images) in its folder under the data
directory. The data directory is, in order: an explicit ``data_dir`` argument (``--data-dir`` on
the command line, ``data.data_dir=`` in a run config), the environment variable
``MODALAB_DATA``, then ``~/.modalab/data``. A missing or corrupt file is an error that names
the file, the folder searched and how to obtain it — never a silent fallback to other data.

``modalab data download NAME`` fetches the original files from their published URLs and checks
them against published checksums where the source publishes one; ``modalab data verify NAME``
checks what is on disk (presence, format, content checksum).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from modalab.errors import DataError
from modalab.registry import Registry

__all__ = [
    "DATA_ENV",
    "ON_ERROR",
    "SOURCES",
    "CorruptDataError",
    "DataError",
    "DataFile",
    "DataSource",
    "FileStatus",
    "MissingDataError",
    "RemoteFile",
    "SkippedFiles",
    "UnsafeArchiveError",
    "atomic_save_bytes",
    "check_on_error",
    "download_source",
    "file_md5",
    "require_files",
    "require_paths",
    "resolve_data_dir",
    "safe_extract",
    "sources_for",
    "verify_source",
]

#: Environment variable naming the data directory.
DATA_ENV = "MODALAB_DATA"
#: Data directory used when neither ``data_dir`` nor ``MODALAB_DATA`` is set.
DEFAULT_DATA_DIR = "~/.modalab/data"


class MissingDataError(FileNotFoundError):
    """Files of a dataset are not on disk; the message says which, where and how to get them."""


class CorruptDataError(ValueError):
    """A dataset file is present but unreadable, truncated or of the wrong format."""


#: Values of ``data.on_error``: stop at the first bad file (default) or skip bad files.
ON_ERROR = ("raise", "skip")


def check_on_error(value: str) -> None:
    """Raise ``ValueError`` unless ``value`` is one of :data:`ON_ERROR`."""
    if value not in ON_ERROR:
        raise ValueError(f"data.on_error={value!r} is unknown; valid: {list(ON_ERROR)}.")


@dataclass
class SkippedFiles:
    """Files skipped under ``data.on_error=skip``, each with the error that excluded it.

    Example:
        >>> skipped = SkippedFiles("manifest")
        >>> skipped.add(Path("a.png"), MissingDataError("Image file a.png does not exist."))
        >>> skipped.count, skipped.as_info()["files"]
        (1, ['a.png'])
    """

    dataset: str
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Number of skipped files."""
        return len(self.files)

    def add(self, path: Path, error: Exception) -> None:
        """Record one skipped file and why."""
        self.files.append(str(path))
        self.errors.append(str(error))

    def report(self) -> None:
        """Warn with the count and the first few files (nothing when none was skipped)."""
        if self.files:
            warnings.warn(
                f"{self.dataset}: data.on_error=skip skipped {self.count} bad file(s), e.g. "
                f"{self.errors[:3]}.",
                stacklevel=3,
            )

    def as_info(self) -> dict[str, object]:
        """``{"count", "files", "errors"}`` for ``Splits.info.skipped``."""
        return {"count": self.count, "files": list(self.files), "errors": list(self.errors)}


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``data_dir`` if given, else ``$MODALAB_DATA``, else ``~/.modalab/data``.

    Example:
        >>> str(resolve_data_dir("/tmp/some-data"))
        '/tmp/some-data'
    """
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path(DEFAULT_DATA_DIR).expanduser()


def _where(data_dir: Path) -> str:
    if os.environ.get(DATA_ENV) and Path(os.environ[DATA_ENV]).expanduser() == data_dir:
        return f"{data_dir} (from ${DATA_ENV})"
    return str(data_dir)


@dataclass(frozen=True)
class RemoteFile:
    """One file to download.

    Attributes:
        urls: Where to fetch it, tried in order (the original source first).
        filename: Name of the downloaded file.
        md5: Published MD5 of the downloaded bytes, or ``None``.
        extract: ``"gz"`` keeps the file as is, ``"zip:PREFIX->DEST"`` (or ``"tar:..."``)
            extracts the members under ``PREFIX`` into ``DEST`` (relative to the source's
            folder), ``""`` keeps it.
        sha256: Published SHA-256 of the downloaded bytes, or ``None``. An archive needs
            ``md5`` or ``sha256`` unless its source checks the extracted folder
            (:attr:`DataSource.content_sha256`); a file without any is refused.
    """

    urls: tuple[str, ...]
    filename: str
    md5: str | None = None
    extract: str = ""
    sha256: str | None = None


@dataclass(frozen=True)
class DataFile:
    """One file a source should have on disk.

    Attributes:
        path: Path relative to the source's folder.
        required: Whether the dataset cannot be built without it (optional files add data,
            e.g. the MNIST training split).
        content_md5: MD5 of the file's content (after gzip decompression for ``.gz`` files),
            or ``None`` when no trusted value is known (format checks still apply).
        sha256: SHA-256 of the file's bytes as stored (a per-file manifest's digest), or
            ``None``; when set it is checked instead of ``content_md5``.
    """

    path: str
    required: bool = True
    content_md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class DataSource:
    """A set of original files in one folder of the data directory.

    Attributes:
        name: Name used by ``modalab data download/verify``.
        folder: Folder under the data directory.
        description: One line.
        files: The files expected on disk.
        remotes: What ``download`` fetches.
        citation: Authors, venue, year of the original dataset.
        licence: The licence of the files.
        content_sha256: Digest over a whole folder of files (see :func:`folder_digest`): folder
            relative to the source folder and its SHA-256, for sources with many files.
        check: Optional format check ``(path) -> None`` raising :class:`CorruptDataError`.
        download: Optional downloader ``(data_dir, log) -> None`` used by
            :func:`download_source` instead of ``remotes`` (sources with per-file manifests).
        list_files: Optional ``(data_dir) -> files`` for sources whose file list is read from
            the data directory (a per-file manifest there); it raises
            :class:`MissingDataError` when the list itself is absent. ``files`` is used
            otherwise (:meth:`expected_files`).
        instructions: How to get the files when they cannot be listed as ``remotes``.
    """

    name: str
    folder: str
    description: str
    files: tuple[DataFile, ...]
    remotes: tuple[RemoteFile, ...]
    citation: str
    licence: str
    content_sha256: tuple[str, str] | None = None
    check: Callable[[Path], None] | None = field(default=None, compare=False)
    download: Callable[[Path, Callable[[str], None]], None] | None = field(
        default=None, compare=False
    )
    list_files: Callable[[Path], tuple[DataFile, ...]] | None = field(default=None, compare=False)
    instructions: str = ""

    def expected_files(self, data_dir: Path) -> tuple[DataFile, ...]:
        """The files expected under ``data_dir`` (from ``list_files`` when the source has one).

        Raises:
            MissingDataError: The list itself (a manifest in the data directory) is absent.
        """
        return self.list_files(data_dir) if self.list_files is not None else self.files

    def how_to_get(self, data_dir: Path) -> str:
        """Instructions for obtaining the files."""
        run = f"To get them: run `modalab data download {self.name} --data-dir {data_dir}`"
        if self.instructions:
            return f"{run} (needs network). {self.instructions}"
        urls = "\n".join(f"    {r.urls[0]}" for r in self.remotes)
        return (
            f"{run} (needs network), or download\n{urls}\n  and place the files under "
            f"{data_dir / self.folder}/ as listed above. Use --data-dir DIR, the config field "
            f"data.data_dir=DIR or the environment variable {DATA_ENV}=DIR to point modalab at "
            "another data directory."
        )


#: Every data source, by name.
SOURCES: Registry[DataSource] = Registry("data source")


def file_md5(path: Path, decompress: bool | None = None) -> str:
    """MD5 of a file's content; ``.gz`` files are decompressed first unless ``decompress=False``.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
        >>> _ = p.write_bytes(b"abc")
        >>> file_md5(p)
        '900150983cd24fb0d6963f7d28e17f72'
    """
    if decompress is None:
        decompress = path.suffix == ".gz"
    digest = hashlib.md5()
    opener = gzip.open if decompress else open
    try:
        with opener(path, "rb") as handle:  # type: ignore[operator]
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, EOFError) as error:
        raise CorruptDataError(f"{path}: cannot be read ({error}).") from None
    return digest.hexdigest()


def folder_digest(folder: Path, pattern: str = "*") -> str:
    r"""SHA-256 over the sorted names and SHA-256 digests of the files in ``folder``.

    Each file contributes the line ``NAME\\0HEXDIGEST\\n``; the digest depends on the files'
    names and bytes only.
    """
    digest = hashlib.sha256()
    for path in sorted(folder.glob(pattern)):
        if path.is_file():
            file_hash = hashlib.sha256(path.read_bytes()).hexdigest()
            digest.update(path.name.encode() + b"\0" + file_hash.encode() + b"\n")
    return digest.hexdigest()


def require_files(source: DataSource, data_dir: Path, paths: Iterable[str]) -> list[Path]:
    """Absolute paths of ``paths`` (relative to the source folder), or a clear error if missing.

    Raises:
        MissingDataError: Listing every missing file, the folder searched and how to get them.
    """
    root = data_dir / source.folder
    return require_paths(source, data_dir, [root / p for p in paths])


def require_paths(source: DataSource, data_dir: Path, wanted: list[Path]) -> list[Path]:
    """``wanted`` (absolute paths of files of ``source``) if all exist, else a clear error.

    Raises:
        MissingDataError: Listing every missing file, the folder searched and how to get them.
    """
    missing = [p for p in wanted if not p.is_file()]
    if missing:
        listed = "\n".join(f"  - {p}" for p in missing)
        raise MissingDataError(
            f"Dataset source {source.name!r} ({source.description}) is missing "
            f"{len(missing)} file(s) in the data directory {_where(data_dir)}:\n{listed}\n"
            + source.how_to_get(data_dir)
        )
    return wanted


@dataclass
class FileStatus:
    """The state of one expected file.

    Attributes:
        path: Absolute path.
        status: ``ok``, ``missing``, ``corrupt``, ``differs`` (readable and well-formed but
            not the published file, e.g. a subset) or ``unchecked`` (present, no checksum known).
        detail: What was found.
        required: Whether the dataset needs the file.
    """

    path: Path
    status: str
    detail: str
    required: bool


def verify_source(source: DataSource, data_dir: Path) -> list[FileStatus]:
    """Check every expected file of ``source`` under ``data_dir``: presence, format, checksum."""
    root = data_dir / source.folder
    report: list[FileStatus] = []
    try:
        specs = source.expected_files(data_dir)
    except MissingDataError as error:  # the file list (a manifest) is itself absent
        return [FileStatus(root, "missing", str(error), True)]
    for spec in specs:
        path = root / spec.path
        if not path.is_file():
            report.append(FileStatus(path, "missing", "not found", spec.required))
            continue
        try:
            if source.check is not None:
                source.check(path)
            if spec.sha256 is not None:
                got = file_sha256(path)
                ok = got == spec.sha256
                detail = f"sha256 {got}" + ("" if ok else f" is not the listed {spec.sha256}")
                report.append(FileStatus(path, "ok" if ok else "differs", detail, spec.required))
                continue
            md5 = file_md5(path)
        except CorruptDataError as error:
            report.append(FileStatus(path, "corrupt", str(error), spec.required))
            continue
        if spec.content_md5 is None:
            report.append(FileStatus(path, "unchecked", f"format ok, md5 {md5}", spec.required))
        elif md5 == spec.content_md5:
            report.append(FileStatus(path, "ok", f"md5 {md5}", spec.required))
        else:
            report.append(
                FileStatus(
                    path,
                    "differs",
                    f"format ok but md5 {md5} is not the published {spec.content_md5}",
                    spec.required,
                )
            )
    if source.content_sha256 is not None:
        folder, expected = source.content_sha256
        path = root / folder
        if path.is_dir() and any(path.iterdir()):
            got = folder_digest(path)
            status = "ok" if got == expected else "differs"
            detail = f"folder digest {got}" + ("" if got == expected else f" != {expected}")
            report.append(FileStatus(path, status, detail, True))
    return report


def atomic_save_bytes(path: Path, write: Callable[[Path], None]) -> None:
    """Write a file through a temporary sibling and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checksum_mismatch(remote: RemoteFile, path: Path) -> str | None:
    """Why ``path`` is not the published file (``None`` if it matches every published digest)."""
    if remote.sha256 is not None:
        got = file_sha256(path)
        if got != remote.sha256:
            return f"sha256 {got} does not match the published {remote.sha256}"
    if remote.md5 is not None:
        got = file_md5(path, decompress=False)
        if got != remote.md5:
            return f"md5 {got} does not match the published {remote.md5}"
    return None


def _fetch(remote: RemoteFile, target: Path, log: Callable[[str], None]) -> None:
    """Download ``remote`` over HTTPS to ``target`` and check its published checksum.

    Raises:
        MissingDataError: If no URL gives the published file (plain-HTTP URLs are refused).
    """
    errors = []
    for url in remote.urls:
        if not url.lower().startswith(("https://", "file://")):  # file://: a local mirror
            errors.append(f"{url}: refused, not HTTPS (the file could be altered in transit)")
            continue
        log(f"downloading {url}")
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "modalab"})
            with urllib.request.urlopen(request, timeout=60) as response:

                def write(tmp: Path, response: object = response) -> None:
                    with open(tmp, "wb") as out:
                        shutil.copyfileobj(response, out)  # type: ignore[arg-type,type-var]

                atomic_save_bytes(target, write)
        except OSError as error:
            errors.append(f"{url}: {error}")
            continue
        mismatch = _checksum_mismatch(remote, target)
        if mismatch is not None:
            target.unlink()
            errors.append(f"{url}: {mismatch}")
            continue
        published = "sha256" if remote.sha256 else "md5" if remote.md5 else ""
        log(f"  {target.name}: " + (f"{published} matches" if published else "no published digest"))
        return
    raise MissingDataError(f"Could not download {remote.filename}:\n  " + "\n  ".join(errors))


class UnsafeArchiveError(CorruptDataError):
    """An archive member would be written outside the target folder (or is a link/device)."""


def _safe_target(root: Path, name: str, archive: Path) -> Path:
    """``root / name`` if it stays inside ``root``; otherwise :class:`UnsafeArchiveError`."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} has an absolute path; refusing to extract the archive."
        )
    base = root.resolve()
    out = (base / name).resolve()
    if out != base and base not in out.parents:
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} would be written outside {root} (path traversal); "
            "refusing to extract the archive."
        )
    return out


def safe_extract(archive: Path, prefix: str, dest: Path) -> list[Path]:
    """Extract the regular-file members of a zip or tar archive under ``prefix`` into ``dest``.

    Every member is checked *before* anything is written: a name with ``..`` escaping
    ``dest`` (zip slip), an absolute path, a symbolic or hard link, or a device file makes
    the whole archive refused.

    Args:
        archive: A ``.zip`` or a tar file (optionally compressed).
        prefix: Only members whose name starts with it are extracted, without it.
        dest: The target folder.

    Returns:
        The written files.

    Raises:
        UnsafeArchiveError: Naming the offending member.
        CorruptDataError: If the archive cannot be read.
    """
    import tarfile

    plan: list[tuple[Path, Callable[[], object]]] = []
    try:
        if zipfile.is_zipfile(archive):
            zf = zipfile.ZipFile(archive)
            for info in zf.infolist():
                name = info.filename
                mode = info.external_attr >> 16
                if (mode & 0o170000) == 0o120000:  # a symbolic link stored in a zip
                    raise UnsafeArchiveError(f"{archive}: member {name!r} is a link; refusing.")
                _safe_target(dest, name, archive)  # the whole name, before the prefix is cut
                if not name.startswith(prefix) or info.is_dir():
                    continue
                out = _safe_target(dest, name[len(prefix) :].lstrip("/"), archive)
                plan.append((out, lambda info=info: zf.open(info)))  # type: ignore[misc]
        elif tarfile.is_tarfile(archive):
            tf = tarfile.open(archive)
            for member in tf.getmembers():
                name = member.name
                if member.issym() or member.islnk() or member.isdev() or member.isfifo():
                    raise UnsafeArchiveError(
                        f"{archive}: member {name!r} is a link or device; refusing."
                    )
                _safe_target(dest, name, archive)
                if not name.startswith(prefix) or not member.isfile():
                    continue
                out = _safe_target(dest, name[len(prefix) :].lstrip("/"), archive)
                plan.append((out, lambda member=member: tf.extractfile(member)))  # type: ignore[misc]
        else:
            raise CorruptDataError(f"{archive}: neither a zip nor a tar archive.")
        written = []
        for out, opener in plan:
            out.parent.mkdir(parents=True, exist_ok=True)
            with opener() as src, open(out, "wb") as dst:  # type: ignore[attr-defined]
                shutil.copyfileobj(src, dst)
            written.append(out)
        return written
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as error:
        raise CorruptDataError(f"{archive}: cannot be read ({error}).") from None


def _extract(archive: Path, spec: str, root: Path) -> None:
    prefix, dest = spec.split(":", 1)[1].split("->")
    safe_extract(archive, prefix, root / dest)


def download_source(
    source: DataSource, data_dir: Path, log: Callable[[str], None] = print
) -> list[FileStatus]:
    """Download the files of ``source`` into ``data_dir``, check checksums, then verify.

    Files already present with the published checksum are not downloaded again.

    Returns:
        The verification report after downloading.
    """
    root = data_dir / source.folder
    unchecked = [
        r.filename
        for r in source.remotes
        if r.md5 is None and r.sha256 is None and source.content_sha256 is None
    ]
    if unchecked:
        raise MissingDataError(
            f"Data source {source.name!r} publishes no checksum for {unchecked}; modalab "
            "refuses to download unverifiable files. Download them yourself and run "
            f"`modalab data verify {source.name}`."
        )
    root.mkdir(parents=True, exist_ok=True)
    if source.download is not None:
        source.download(data_dir, log)
    for remote in source.remotes:
        target = root / remote.filename
        published = remote.md5 is not None or remote.sha256 is not None
        if target.is_file() and published and _checksum_mismatch(remote, target) is None:
            log(f"{target} already present (checksum matches)")
        else:
            _fetch(remote, target, log)
        if remote.extract.startswith(("zip:", "tar:")):
            _extract(target, remote.extract, root)
            target.unlink()
    return verify_source(source, data_dir)


def sources_for(name: str) -> list[DataSource]:
    """The sources of a dataset name, or the source of that name.

    Raises:
        KeyError: Naming the valid dataset and source names.
    """
    from modalab.data.registry import DATASETS  # the dataset modules import this one

    with_files = {e.name: e.sources for e in DATASETS.entries() if e.sources}
    if name in with_files:
        return [SOURCES.get(s) for s in with_files[name]]
    if name in SOURCES:
        return [SOURCES.get(name)]
    raise KeyError(
        f"Unknown dataset or data source {name!r}; datasets with files: "
        f"{', '.join(sorted(with_files))}; sources: {', '.join(SOURCES.names())}."
    )
