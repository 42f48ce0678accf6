"""Corpus sources: where the raw text comes from.

A source yields :class:`Document` objects in a deterministic order, so that preparing the same source twice
gives byte-identical shards. Everything is offline: the default corpus is the Python standard library's own
source files found on this machine (real text, always present, no download); any text files or folders can be
used instead; a Hugging Face dataset only when the ``datasets`` package is installed *and* the data set is
already cached.
"""

from __future__ import annotations

import logging
import os
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scalinglab.errors import DataError

log = logging.getLogger(__name__)

# Folders inside the stdlib directory that are not the standard library itself.
_STDLIB_SKIP = {"site-packages", "dist-packages", "__pycache__", "idlelib", "lib2to3", "tkinter",
                "turtledemo"}
TEXT_SUFFIXES = (".py", ".txt", ".md", ".rst", ".json", ".toml", ".cfg", ".c", ".h", ".html", ".csv", ".tex")


@dataclass(frozen=True)
class Document:
    """One document: a stable identifier (used for the train/val split) and its text."""

    doc_id: str
    text: str


def stdlib_root() -> Path:
    """Directory of the running interpreter's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def _walk_sorted(root: Path, suffixes: tuple[str, ...], skip: set[str]) -> Iterator[Path]:
    """Files under ``root`` with one of ``suffixes``, in sorted (hence machine-independent) order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(suffixes):
                yield Path(dirpath) / name


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as err:
        log.info("skipping %s: %s", path, err)
        return None


def stdlib_documents() -> Iterator[Document]:
    """The standard library's ``.py`` files, sorted by relative path (site-packages excluded)."""
    root = stdlib_root()
    for path in _walk_sorted(root, (".py",), _STDLIB_SKIP):
        text = _read_text(path)
        if text:
            yield Document(f"stdlib/{path.relative_to(root).as_posix()}", text)


def path_documents(path: str | Path, suffixes: tuple[str, ...] = TEXT_SUFFIXES) -> Iterator[Document]:
    """A text file, or every text file under a folder (sorted), as documents."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"corpus path {p} does not exist; pass an existing text file or folder")
    if p.is_file():
        text = _read_text(p)
        if text:
            yield Document(p.name, text)
        return
    for f in _walk_sorted(p, suffixes, {"__pycache__"}):
        text = _read_text(f)
        if text:
            yield Document(f.relative_to(p).as_posix(), text)


def hf_documents(name: str, split: str = "train", text_field: str = "text") -> Iterator[Document]:
    """A Hugging Face data set that is already on disk (never downloads: offline mode is forced)."""
    try:
        import datasets  # noqa: F401
    except ImportError as err:
        raise DataError(f"source hf:{name} needs the 'datasets' package, which is not installed") from err
    os.environ["HF_DATASETS_OFFLINE"] = "1"  # never download at run time
    os.environ["HF_HUB_OFFLINE"] = "1"
    from datasets import load_dataset

    try:
        ds = load_dataset(name, split=split)
    except Exception as err:  # the datasets library raises many types; all mean "not usable offline"
        raise DataError(f"hf:{name} is not available offline ({type(err).__name__}); cache it first") from err
    for i, row in enumerate(ds):
        text = row.get(text_field)
        if text:
            yield Document(f"hf/{name}/{i}", text)


def open_source(spec: str) -> Iterator[Document]:
    """Documents of a source spec: ``stdlib``, ``hf:NAME[:SPLIT]``, or a file/folder path."""
    if spec == "stdlib":
        return stdlib_documents()
    if spec.startswith("hf:"):
        parts = spec[3:].split(":")
        return hf_documents(parts[0], *(parts[1:2]))
    return path_documents(spec)
