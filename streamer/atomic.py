"""Write files and directories atomically: readers see the old version or the whole new
one, never a partial file, and concurrent writers never share a temporary name.

Each write goes to a uniquely named temporary beside the target (the same directory, so
the same file system), then ``os.replace`` moves it into place; on an error the temporary
is removed and the target is left as it was. ``file_lock`` serialises whole fetch-or-build
steps between processes (POSIX only).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    """The process umask, read without setting it (os.umask would change it for a moment
    under every other thread) where Linux shows it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Files get the permissions an ordinary open() would give (mkstemp makes them 0600):
# caches are shared by every worker of the user, and bundles may be copied elsewhere.
_UMASK = _umask()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock, so two processes never fetch or build the same thing at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content into; it replaces ``path`` when the
    block ends without an error, and is removed when it raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())  # the content is on disk before the name points at it
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    """``path.write_bytes(data)``, atomically."""
    with atomic_file(path) as fh:
        fh.write(data)


def write_text(path: Path, text: str) -> None:
    """``path.write_text(text, "utf-8")``, atomically."""
    write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """An empty directory to build ``path``'s new content in; it replaces ``path`` (and
    whatever was there) when the block ends without an error, and is removed when it raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        # os.replace cannot overwrite a non-empty directory: move the old one aside first.
        old = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".old"))
        try:
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, old)
            os.replace(tmp, path)
        finally:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
