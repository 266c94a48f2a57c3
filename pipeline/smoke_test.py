"""Load an export the way ``tensorflow_model_server`` does and answer its warmup requests.

Run in a fresh process before a version is published (like TFX's InfraValidator):

    spam-ham-smoke-test <export folder>      (or: python -m pipeline.smoke_test ...)

Prints a JSON summary and exits 0, or prints what failed and exits 1.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def smoke_test(export_dir: str) -> dict:
    from pipeline import export, exported_model

    model = exported_model.TF1SessionModel(export_dir)
    try:
        missing = set(export.SIGNATURES) - set(model.signature_defs)
        if missing:
            raise AssertionError(f"signatures {sorted(missing)} are missing")
        logs = exported_model.read_warmup_requests(export_dir)
        if not logs:
            raise AssertionError(f"no warmup requests in {export.WARMUP_FILE}")
        for log in logs:
            outputs = model.replay(log)
            scores = outputs.get("spam_probability", outputs.get("scores"))
            if scores is None or not np.all((scores >= 0) & (scores <= 1)):
                raise AssertionError(f"a warmup request gave no probabilities: {outputs}")
        return {"export": export_dir, "warmup_requests": len(logs), "ok": True}
    finally:
        model.close()


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
