"""Load an export the way ``tensorflow_model_server`` does and answer its warmup requests
(the check PromoteVersion runs in a fresh process before publishing, like TFX's
InfraValidator; the command is ``spam-ham-smoke-test``, :mod:`pipeline.cli.smoke_test`).
"""
from __future__ import annotations

import numpy as np


def smoke_test(export_dir: str) -> dict:
    from pipeline.serving import export
    from pipeline.serving import exported_model

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
