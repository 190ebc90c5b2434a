"""The ``semalign`` command. Sub-commands import their module only when called."""

from __future__ import annotations

import argparse
import errno
import importlib
import sys


def _lazy(module: str, func: str):
    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), func)(args)
    return run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="semalign",
        description="Companion of 'Semantic Alignment of Unimodal Medical Text and Vision "
        "Representations': embed, align, stitch and build the reproduction book.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("book", help="execute every notebook with a profile and build the Jupyter Book")
    b.add_argument("--profile", default="offline",
                   help="paper, open, offline (default) or the path of a .yml/.yaml profile file")
    b.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override a notebook parameter in every notebook (repeatable)")
    b.add_argument("--only", nargs="*", default=None, help="run only these notebooks (stems)")
    b.add_argument("--no-build", action="store_true", help="execute notebooks but skip jupyter-book build")
    b.add_argument("--force", action="store_true",
                   help="execute every notebook, even those the execution cache would reuse")
    b.add_argument("--student", action="store_true",
                   help="only build the student edition (solutions stripped) into _build/student/html "
                   "from the notebooks `semalign book` executed; runs nothing")
    full, student = _lazy("semalign.book", "cli_book"), _lazy("semalign.course", "cli_student")
    b.set_defaults(func=lambda args: (student if args.student else full)(args))

    r = sub.add_parser("run", help="execute one notebook (jupytext -> papermill) into book/generated/, or with "
                       "-p/--name into a run folder of its own (a sweep); outputs are published only if it completes")
    r.add_argument("notebook", help="a notebook path or stem, e.g. 02_transforms (or 02)")
    r.add_argument("--profile", default="offline",
                   help="paper, open, offline (default) or the path of a .yml/.yaml profile file")
    r.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override a parameter of the notebook; VALUE is YAML, of the default's type (repeatable); "
                   "makes this a sweep into runs/<name>/ unless --output-dir is given")
    r.add_argument("--name", default=None,
                   help="the sweep's folder name under runs/ (default <stem>-<hash of the overrides>)")
    r.add_argument("--output-dir", default=None,
                   help="folder for <stem>.ipynb and results/<stem>.csv (default book/generated, or the run folder)")
    r.add_argument("--force", action="store_true", help="execute even if the execution cache holds this run")
    r.set_defaults(func=_lazy("semalign.book", "cli_run"))

    rs = sub.add_parser("runs", help="list the sweeps in the runs folder (semalign run -p …)")
    rs.set_defaults(func=_lazy("semalign.runs", "cli_runs"))

    cmp = sub.add_parser("compare", help="compare two runs: parameters that differ, mean results side by side")
    cmp.add_argument("a", metavar="RUN_A", help="'book' (book/generated), a run name (semalign runs) or a folder")
    cmp.add_argument("b", metavar="RUN_B", help="the same; differences are B - A")
    cmp.add_argument("--by", default=None, help="grouping columns, comma-separated (default: inferred)")
    cmp.add_argument("--notebook", nargs="*", default=None, help="only these notebooks (stems)")
    cmp.set_defaults(func=_lazy("semalign.runs", "cli_compare"))

    a = sub.add_parser("assets", help="registry assets (weights and data shipped in PyPI wheels)")
    a.add_argument("action", choices=["fetch", "ls"])
    a.add_argument("names", nargs="*", help="asset names (default: all)")
    a.add_argument("--verify", action="store_true",
                   help="ls: hash every unpacked file (default: sizes, and hashes only of files whose mtime changed)")
    a.set_defaults(func=_lazy("semalign.assets", "cli"))

    d = sub.add_parser("data", help="datasets: check local copies against the manifests")
    d.add_argument("action", choices=["check", "ls"])
    d.add_argument("names", nargs="*", help="dataset names (default: all)")
    d.set_defaults(func=_lazy("semalign.data", "cli"))

    c = sub.add_parser("cache", help="the embedding cache")
    c.add_argument("action", choices=["ls", "clear"])
    c.add_argument("--encoder", default=None, help="only entries of this encoder")
    c.set_defaults(func=_lazy("semalign.cache", "cli"))

    def device_arg(text: str) -> str:
        """auto / cpu / cuda / cuda:N / mps, else argparse's one-line usage error."""
        from semalign.encoders.base import EncoderError, check_device

        try:
            return check_device(text)
        except EncoderError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    def batch_size_arg(text: str) -> int:
        """A whole number >= 1 (0 and negatives used to be silently replaced by a default)."""
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be a positive whole number (1, 2, ...), got {text!r}")
        return value

    e = sub.add_parser("embed", help="embed a dataset with an encoder into the cache")
    e.add_argument("encoder", help="registry name, hub id or local model folder")
    e.add_argument("dataset", help="dataset name, e.g. openi-reports")
    e.add_argument("--device", type=device_arg, default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    e.add_argument("--batch-size", type=batch_size_arg, default=None, help="a positive whole number")
    e.set_defaults(func=_lazy("semalign.encoders", "cli"))

    enc = sub.add_parser("encoders", help="list the encoder registry")
    enc.set_defaults(func=_lazy("semalign.encoders", "cli_list"))
    return p


#: OS errors that mean "your disk or your permissions", not a bug: one line, what to do.
_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space (or point SEMALIGN_CACHE at a larger disk) and rerun; "
                  "everything finished before stays valid and is reused",
    errno.EDQUOT: "the disk quota is exhausted: free space and rerun",
    errno.EROFS: "that file system is read-only: point SEMALIGN_CACHE (or --output-dir) at a writable folder",
    errno.EACCES: "permission denied: point SEMALIGN_CACHE (or --output-dir) at a folder you can write",
    errno.EPERM: "operation not permitted: point SEMALIGN_CACHE (or --output-dir) at a folder you own",
}


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command. A :class:`~semalign.errors.SemalignError` (bad input, missing data,
    wrong checksum …) or a disk/permission ``OSError`` is printed as one line and gives exit
    status 2; anything else is a bug and keeps its traceback."""
    from semalign.errors import SemalignError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SemalignError as e:
        print(f"semalign {args.command}: error: {e}", file=sys.stderr)
    except OSError as e:
        hint = _OS_HINTS.get(e.errno)
        if hint is None:
            raise
        where = f" ({e.filename})" if e.filename else ""
        print(f"semalign {args.command}: error: {e.strerror}{where}: {hint}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"semalign {args.command}: interrupted; finished work is kept and reused on the next run",
              file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
