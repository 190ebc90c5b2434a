"""Small file helpers shared by the cache, the asset fetcher and the notebooks.

Every write in semalign goes through :func:`atomic_write` so that a process killed
mid-write never leaves a half file where a complete one is expected.
"""

from __future__ import annotations

from semalign.errors import SemalignError

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import, before any thread starts
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    The rename is atomic on POSIX, so readers see either the old file or the new one.
    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; give the file the permissions open() would (0666 less the umask),
        # so results and book pages written atomically are readable by others as usual
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


class LockTimeout(SemalignError, RuntimeError):
    """Another process held a semalign lock for longer than the timeout."""


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, timeout: float = 3600.0, poll: float = 0.1) -> Iterator[Path]:
    """An exclusive inter-process lock on ``path`` (a ``.lock`` file), as the Hugging Face cache
    takes one per entry: ``with file_lock(entry / ".lock"): ...``.

    POSIX ``fcntl.flock`` on an open file: the kernel releases it when the holder exits or dies,
    so a killed process never leaves a stale lock behind. The lock file itself is left in place
    (removing it would race with a process that just opened it). Waits up to ``timeout`` seconds,
    then raises :class:`LockTimeout` naming the file. Re-entrant within one thread is *not*
    supported: take each lock once.
    """
    import fcntl
    import time

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"another semalign process has held {path} for more than {timeout:.0f} s; "
                        f"the lock is released as soon as that process exits; find it with `fuser {path}`") from None
                time.sleep(poll)
        yield path
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
