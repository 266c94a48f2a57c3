"""The whole chain on the real corpus, downloaded over real HTTP from 127.0.0.1, through
the ``luigi`` command line exactly as the README runs it."""
import json
import os
import subprocess

import pandas as pd
import pytest

from conftest import LUIGI, REPO, serve_folder


def tensorboard_scalars(folder) -> dict[str, list[float]]:
    """The scalars of TensorBoard's event files in ``folder``, by tag, in step order, read
    with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})  # 0: keep every step
    events.Reload()
    return {tag: [float(tf_make_ndarray(event.tensor_proto)) for event in events.Tensors(tag)]
            for tag in events.Tags()["tensors"]}


def tf_make_ndarray(proto):
    import tensorflow as tf

    return tf.make_ndarray(proto)


def run_luigi(*args, env):
    return subprocess.run([LUIGI, "--module", "pipeline.tasks", *args, "--local-scheduler"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def test_real_corpus_over_http_to_scores(shared_zip, tmp_path):
    outputs = tmp_path / "outputs"
    with serve_folder(shared_zip.parent) as url:
        env = {**os.environ, "SPAM_CORPUS_URL": f"{url}/{shared_zip.name}"}
        args = ["BatchScore", "--date", "2026-11-25", "--pipeline-outputs-root", str(outputs)]
        first = run_luigi(*args, env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        assert ":) because there were no failed tasks" in first.stderr, first.stderr[-3000:]

        version = outputs / "serving" / "spam_ham" / "1"
        assert (version / "saved_model.pb").is_file()
        assert (version / "variables" / "variables.index").is_file()
        assert sorted(p.name for p in version.parent.iterdir()) == ["1"]

        [metrics_file] = (outputs / "training").glob("*/metrics.json")
        test_metrics = json.loads(metrics_file.read_text())["test"]
        assert test_metrics["accuracy"] >= 0.98, test_metrics
        assert test_metrics["mcc"] >= 0.90, test_metrics
        history = json.loads((metrics_file.parent / "history.json").read_text())
        logged = tensorboard_scalars(metrics_file.parent / "tensorboard" / "validation")
        assert logged["epoch_loss"] == pytest.approx([row["val_loss"] for row in history],
                                                     rel=1e-5)

        [scores] = (outputs / "scores" / "2026-11-25").glob("*.csv")
        table = pd.read_csv(next((outputs / "corpus").glob("*/messages.csv")),
                            keep_default_na=False)
        out = pd.read_csv(scores, keep_default_na=False)
        assert out["id"].tolist() == table.loc[table.split == "test", "line"].tolist()

        second = run_luigi(*args, env=env)
        assert second.returncode == 0
        assert "1 complete ones were encountered" in second.stderr
        assert "ran successfully" not in second.stderr
