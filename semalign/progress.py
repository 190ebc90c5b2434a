"""Progress of long work: a tqdm bar in a terminal, and nothing in the book's pages.

A notebook kernel has no terminal: what it prints lands in the executed notebook, i.e. in the
rendered page. So long loops report through a *channel* instead: when ``$SEMALIGN_PROGRESS``
names a file (``semalign book`` and ``semalign run`` set it for the kernel), :func:`bar` appends
one JSON line per update to it (throttled to a few per second), and the parent process, which
owns the terminal, tails that file and draws the bars (:func:`monitor`). Outside a kernel (a
script, a terminal session) :func:`bar` is an ordinary tqdm bar, shown unless ``disable``.

>>> with bar(total=len(cells), desc="stitch openi-5class", disable=not progress) as b:
...     for cell in cells:
...         ...
...         b.update()

A channel line is ``{"id", "desc", "n", "total", "done"}``; a bar whose ``done`` line never comes
(the kernel died) is closed when the monitor stops. On a terminal the monitor draws live tqdm bars
and prints one line per finished bar; when stderr is not a terminal (CI, a log file) it prints
only the finished lines, so logs stay short.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

#: The environment variable naming the channel file of the running kernel.
PROGRESS_ENV = "SEMALIGN_PROGRESS"
#: Seconds between two channel lines of one bar (the first and the last are always written).
THROTTLE = 0.25

_ids = itertools.count()


class Bar:
    """A tqdm-like bar (``update``, ``close``, a context manager) that also reports to the
    channel named by ``$SEMALIGN_PROGRESS`` when that is set. Use :func:`bar`."""

    def __init__(self, total: int | None, desc: str, disable: bool, leave: bool):
        from tqdm.auto import tqdm

        self.total, self.desc, self.n = total, desc, 0
        self._local = tqdm(total=total, desc=desc, disable=disable, leave=leave)
        path = os.environ.get(PROGRESS_ENV)
        self._channel = Path(path) if path else None
        self._id = f"{os.getpid()}-{next(_ids)}"
        self._last = 0.0
        self._closed = False
        self._send(force=True)

    def _send(self, force: bool = False, done: bool = False) -> None:
        if self._channel is None:
            return
        now = time.monotonic()
        if not (force or done) and now - self._last < THROTTLE:
            return
        self._last = now
        line = json.dumps({"id": self._id, "desc": self.desc, "n": self.n, "total": self.total,
                           "done": done}) + "\n"
        try:  # one short append per line: lines never interleave, and a lost line is only cosmetic
            with open(self._channel, "a", encoding="utf-8") as f:
                f.write(line)
        except OSError:
            self._channel = None  # the parent went away: keep computing, stop reporting

    def update(self, n: int = 1) -> None:
        self.n += n
        self._local.update(n)
        self._send(force=self.total is not None and self.n >= self.total)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._local.close()
        self._send(done=True)

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def bar(total: int | None = None, desc: str = "", *, disable: bool = False, leave: bool = False) -> Bar:
    """A progress bar for a loop of ``total`` steps: tqdm on this process's terminal unless
    ``disable`` (the book's code passes ``progress=False``), and, in a kernel run by ``semalign
    book`` / ``semalign run``, on the parent's terminal through the channel (always)."""
    return Bar(total, desc, disable, leave)


def track(items: Iterable, desc: str = "", *, total: int | None = None, disable: bool = False) -> Iterator:
    """``for x in track(items, "zero-shot"): ...`` — :func:`bar` around an iterable."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(total, desc, disable=disable) as b:
        for x in items:
            yield x
            b.update()


# --------------------------------------------------------------------------- the parent's side
class _Renderer:
    """Tails a channel file and draws its bars on ``stream`` (a thread; see :func:`monitor`)."""

    def __init__(self, path: Path, stream: IO[str], prefix: str, poll: float):
        self.path, self.stream, self.prefix, self.poll = path, stream, prefix, poll
        self.live = bool(getattr(stream, "isatty", lambda: False)())
        self.bars: dict[str, Any] = {}
        self.started: dict[str, float] = {}
        self._offset, self._partial = 0, ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="semalign-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._drain()
        for key in list(self.bars):  # a bar whose kernel died before its last line
            self._finish(key, None, interrupted=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            self._drain()

    def _drain(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as f:
                f.seek(self._offset)
                chunk = f.read()
                self._offset = f.tell()
        except OSError:
            return
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next read
        for line in lines:
            try:
                ev = json.loads(line)
                self._event(ev)
            except (ValueError, TypeError, KeyError, AttributeError):
                continue  # a damaged line is only a missed update

    def _event(self, ev: dict) -> None:
        key = str(ev["id"])
        if key not in self.started:
            self.started[key] = time.monotonic()
            if self.live:
                from tqdm.auto import tqdm

                self.bars[key] = tqdm(total=ev.get("total"), desc=self.prefix + str(ev.get("desc", "")),
                                      file=self.stream, leave=False, disable=False, dynamic_ncols=True)
            else:
                self.bars[key] = None
        b = self.bars.get(key)
        if b is not None:
            b.n = int(ev.get("n") or 0)
            b.refresh()
        if ev.get("done"):
            self._finish(key, ev)

    def _finish(self, key: str, ev: dict | None, interrupted: bool = False) -> None:
        b = self.bars.pop(key, None)
        if b is not None:
            b.close()
        if ev is None:
            return
        took = time.monotonic() - self.started.get(key, time.monotonic())
        total = ev.get("total")
        count = f"{ev.get('n')}/{total}" if total is not None else f"{ev.get('n')}"
        print(f"{self.prefix}{ev.get('desc', '')}: {count} in {took:.1f} s", file=self.stream, flush=True)


@contextlib.contextmanager
def monitor(path: str | os.PathLike, *, stream: IO[str] | None = None, prefix: str = "",
            poll: float = 0.2) -> Iterator[Path]:
    """Render the channel file ``path`` (created empty) on ``stream`` (default stderr) while the
    block runs; give the kernel ``{PROGRESS_ENV: str(path)}``. Nothing is written into the
    notebook: the kernel only appends to the file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("", encoding="utf-8")
    r = _Renderer(path, stream or sys.stderr, prefix, poll)
    r.start()
    try:
        yield path
    finally:
        r.stop()
