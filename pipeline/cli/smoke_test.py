"""Load an export the way ``tensorflow_model_server`` does and answer its warmup requests.

Run in a fresh process before a version is published (like TFX's InfraValidator):

    spam-ham-smoke-test <export folder>      (or: python -m pipeline.cli.smoke_test ...)

Prints a JSON summary and exits 0, or prints what failed and exits 1.
"""
from __future__ import annotations

import argparse
import json
import sys

from pipeline.cli import exit_codes_epilog
from pipeline.serving.smoke_test import smoke_test

EXIT_CODES = {
    0: "the export loaded and answered its warmup requests (JSON summary on standard output)",
    1: "the smoke test failed: do not publish this export (what failed on standard error)",
    2: "usage error (no export folder given, unknown option)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spam-ham-smoke-test", description=__doc__,
                                     epilog=exit_codes_epilog(EXIT_CODES),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export", help="an export folder (a version under the base path, "
                                       "or an export under outputs/exports/)")
    return parser


def main(argv: list[str] | None = None) -> int:
    export_dir = build_parser().parse_args(argv).export
    try:
        print(json.dumps(smoke_test(export_dir)))
    except Exception as error:  # noqa: BLE001 - any failure means "do not publish"
        print(f"smoke test of {export_dir} failed: {type(error).__name__}: {error}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
