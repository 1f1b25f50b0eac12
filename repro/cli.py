"""``python -m repro <command>``: the command-line entry point.

Errors a user can cause (a missing or corrupt file, a bad parameter) end with a one-line
message and a non-zero exit code, never a traceback.
"""
from __future__ import annotations

import argparse
import sys


def _cmd_data(args) -> int:
    from repro import data

    data.fetch(mirror=args.mirror, dest=args.dest, download=args.download or None,
               verbose=not args.quiet)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m repro", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("data", help="fetch and verify the VGG weights and images into data/",
                       description="Fill data/ from a mirror directory (REPRO_DATA_MIRROR, default "
                       "../shared/data) or, with no mirror, from the public sources recorded in "
                       "data/manifests; every file is checked against its sha256.")
    d.add_argument("--mirror", help="mirror directory with images/ and weights/ (default: "
                   "$REPRO_DATA_MIRROR or ../shared/data when it exists)")
    d.add_argument("--dest", help="destination (default: $REPRO_DATA or data/)")
    d.add_argument("--download", action="store_true",
                   help="ignore any mirror and download from the public sources")
    d.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    d.set_defaults(func=_cmd_data)
    return p


# Exceptions that mean "the user gave bad input": reported in one line.
def _user_errors():
    from repro.data import DataError

    errors = [DataError, FileNotFoundError, ValueError, PermissionError]
    try:
        from repro.images import ImageLoadError
        errors.append(ImageLoadError)
    except ImportError:
        pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
