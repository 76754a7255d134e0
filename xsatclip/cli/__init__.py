"""The ``xsatclip`` command: precompute, info, export, overviews, preview, stac, sample,
zonal, embed-points, models, train, evaluate, convert.

Errors that xsatclip raises on purpose (and missing files and other OS errors) end the
command with one line, ``xsatclip: error: ...``, and exit status 1; argparse usage errors exit
with 2. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

from .parser import build_parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xsatclip`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    from ..errors import XSatclipError

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("xsatclip: interrupted", file=sys.stderr)
        return 130
    except (XSatclipError, OSError) as exc:  # OSError: FileNotFoundError &c.
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"xsatclip: error: {message}", file=sys.stderr)
        return 1
    except MemoryError:
        print("xsatclip: error: out of memory; use a smaller --batch-size, fewer points or a "
              "coarser grid (--resolution)", file=sys.stderr)
        return 1
