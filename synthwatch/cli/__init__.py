"""The ``synthwatch`` command line: parse arguments, call the libraries, print results."""

from __future__ import annotations

import logging
import os
import sys
from typing import Sequence

from synthwatch.embeddings.errors import EmbeddingError
from synthwatch.store.errors import StoreError
from synthwatch.cli.config_flags import apply_store_config, write_config_after
from synthwatch.cli.parser import build_parser
from synthwatch.settings import Settings

__all__ = ["build_parser", "main"]


class _StderrLines(logging.Handler):
    """The libraries' warnings as ``synthwatch: ...`` lines on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"synthwatch: {record.getMessage()}", file=sys.stderr)


def _show_library_warnings() -> None:
    logger = logging.getLogger("synthwatch")
    if not any(isinstance(handler, _StderrLines) for handler in logger.handlers):
        logger.addHandler(_StderrLines(logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    _show_library_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = Settings.from_args(args.store)
    try:
        apply_store_config(args, settings)
        code = args.handler(args, settings)
        write_config_after(args, settings)
        return code
    except (StoreError, EmbeddingError, ValueError) as error:
        print(f"synthwatch: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("synthwatch: interrupted; stored batches are kept, run again to continue.",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
