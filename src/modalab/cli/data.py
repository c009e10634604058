"""``modalab data list | download NAME | verify NAME | manifest crema-d``: real datasets' files."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = ["EPILOG_DATA", "add_data_args", "cmd_data"]

EPILOG_DATA = """\
The data directory is --data-dir, else $MODALAB_DATA, else ~/.modalab/data.

examples:
  modalab data list                         # datasets, their sources and what is on disk
  modalab data download avmnist             # MNIST idx files + FSDD recordings (network)
  modalab data verify avmnist --data-dir /data/modalab
  modalab data manifest crema-d --from CREMA-D   # CREMA-D's SHA-256 list from its LFS pointers
  modalab run data=avmnist data.data_dir=/data/modalab
"""

_STYLE = {
    "ok": "green",
    "unchecked": "cyan",
    "differs": "yellow",
    "missing": "red",
    "corrupt": "red",
}


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``modalab data``."""
    parser.add_argument("action", choices=["list", "download", "verify", "manifest"])
    parser.add_argument("name", nargs="?", default="", help="dataset or data source name")
    parser.add_argument(
        "--data-dir", default="", help="data directory (default: $MODALAB_DATA or ~/.modalab/data)"
    )
    parser.add_argument(
        "--all-files",
        action="store_true",
        help="verify: list every file, not only the problems and a summary",
    )
    parser.add_argument(
        "--from",
        dest="checkout",
        default="",
        help="manifest: a checkout of CheyneyComputerScience/CREMA-D cloned with "
        "GIT_LFS_SKIP_SMUDGE=1 (its media paths hold Git LFS pointers)",
    )


def _manifest(console: Console, name: str, data_dir: Path, checkout: str) -> int:
    """Write CREMA-D's per-file manifest into the data directory from LFS pointer files."""
    from modalab.data.cremad import manifest_from_lfs_pointers, manifest_path, write_manifest

    if name not in ("crema-d", "cremad"):
        console.print(
            f"modalab data manifest: only crema-d has a per-file manifest, not {name!r}.",
            markup=False,
        )
        return 2
    if not checkout:
        console.print(
            "modalab data manifest crema-d needs --from CHECKOUT, a clone of "
            "CheyneyComputerScience/CREMA-D made with GIT_LFS_SKIP_SMUDGE=1.",
            markup=False,
        )
        return 2
    entries = manifest_from_lfs_pointers(checkout)
    target = manifest_path(data_dir)
    write_manifest(entries, target)
    sizes: dict[str, tuple[int, int]] = {}
    for entry in entries:
        part = entry.path.split("/")[0]
        count, total = sizes.get(part, (0, 0))
        sizes[part] = (count + 1, total + entry.size)
    listed = ", ".join(f"{p} {n:,} files ({b / 1e6:,.1f} MB)" for p, (n, b) in sizes.items())
    console.print(f"wrote {target}: {listed}", markup=False, highlight=False)
    return 0


def _summary(name: str, data_dir: Path) -> str:
    from modalab.data.files import sources_for, verify_source

    counts: dict[str, int] = {}
    for source in sources_for(name):
        for status in verify_source(source, data_dir):
            if status.status == "missing" and not status.required:
                continue
            counts[status.status] = counts.get(status.status, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _list(console: Console, data_dir: Path) -> int:
    from modalab.data import DATASETS
    from modalab.data.files import SOURCES

    table = Table(title=f"datasets (data directory: {data_dir})")
    for column in ("dataset", "description", "sources", "files on disk"):
        table.add_column(column)
    for entry in DATASETS.entries():
        sources = entry.sources
        state = _summary(entry.name, data_dir) if sources else "none needed (bundled/generated)"
        table.add_row(entry.name, entry.description, ", ".join(sources), state)
    console.print(table)
    table = Table(title="data sources")
    for column in ("source", "folder", "licence", "citation", "download checksum"):
        table.add_column(column)
    for src in SOURCES.entries():
        s = src.obj
        checked = bool(s.remotes) and all(r.md5 for r in s.remotes)
        table.add_row(
            s.name,
            s.folder + "/",
            s.licence,
            s.citation,
            "per-file SHA-256 manifest"
            if s.download is not None
            else "published md5"
            if checked
            else "content digest after download"
            if s.content_sha256
            else "none published",
        )
    console.print(table)
    return 0


def _report(console: Console, name: str, data_dir: Path, all_files: bool) -> int:
    from modalab.data.files import sources_for, verify_source

    failed = False
    for source in sources_for(name):
        statuses = verify_source(source, data_dir)
        counts: dict[str, int] = {}
        for st in statuses:
            optional_missing = st.status == "missing" and not st.required
            key = "missing (optional)" if optional_missing else st.status
            counts[key] = counts.get(key, 0) + 1
            # a checksum that differs is a failure: results on other bytes are not comparable
            failed |= st.status in ("corrupt", "differs") or (
                st.status == "missing" and st.required
            )
            if all_files or st.status not in ("ok", "unchecked"):
                style = "dim" if optional_missing else _STYLE[st.status]
                console.print(
                    f"  [{style}]{key:>10}[/] {st.path}  {st.detail}", markup=True, highlight=False
                )
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        console.print(f"[bold]{source.name}[/] in {data_dir / source.folder}: {summary}")
        if any(st.status == "missing" and st.required for st in statuses):
            console.print(source.how_to_get(data_dir), markup=False, highlight=False)
        if any(st.status == "differs" for st in statuses):
            console.print(
                "  A file differs from the published one: download it again "
                f"(`modalab data download {source.name}`) or replace it with the original.",
                markup=False,
                highlight=False,
            )
    return 1 if failed else 0


def cmd_data(args: argparse.Namespace) -> int:
    """Handler of ``modalab data``."""
    from modalab.data.files import (
        CorruptDataError,
        MissingDataError,
        download_source,
        resolve_data_dir,
        sources_for,
    )

    console = Console()
    data_dir = resolve_data_dir(args.data_dir)
    if args.action == "list":
        return _list(console, data_dir)
    if args.action == "manifest":
        try:
            return _manifest(console, args.name, data_dir, args.checkout)
        except (MissingDataError, CorruptDataError) as error:
            console.print(f"manifest not written: {error}", markup=False)
            return 1
    if not args.name:
        console.print(f"modalab data {args.action} needs a NAME; see `modalab data list`.")
        return 2
    try:
        sources = sources_for(args.name)
    except KeyError as error:
        console.print(str(error.args[0]), markup=False)
        return 2
    if args.action == "download":
        for source in sources:
            try:
                download_source(source, data_dir, log=lambda m: console.print(m, markup=False))
            except (MissingDataError, CorruptDataError) as error:
                console.print(f"download failed: {error}", markup=False)
                return 1
    return _report(console, args.name, data_dir, args.all_files)
