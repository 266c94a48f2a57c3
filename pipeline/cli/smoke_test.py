"""Load an export the way ``tensorflow_model_server`` does and answer its warmup requests.

Run in a fresh process before a version is published (like TFX's InfraValidator):

    spam-ham-smoke-test <export folder>      (or: python -m pipeline.cli.smoke_test ...)

Prints a JSON summary and exits 0, or prints what failed and exits 1.
"""
from __future__ import annotations

import argparse
import json
import sys

from pipeline.serving.smoke_test import smoke_test


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spam-ham-smoke-test", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export", help="an export folder (a version under the base path, "
                                       "or an export under outputs/exports/)")
    export_dir = parser.parse_args(argv).export
    try:
        print(json.dumps(smoke_test(export_dir)))
    except Exception as error:  # noqa: BLE001 - any failure means "do not publish"
        print(f"smoke test of {export_dir} failed: {type(error).__name__}: {error}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
