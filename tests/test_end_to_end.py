"""The whole chain on the real corpus, downloaded over real HTTP from 127.0.0.1, through
the ``luigi`` command line exactly as the README runs it."""
import json
import os
import re
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


def terminal_lines(output: str) -> list[str]:
    """The lines a terminal shows, without the time each begins with."""
    return [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in output.splitlines()]


def _index(lines: list[str], start: str) -> int:
    [index] = [i for i, line in enumerate(lines) if line.startswith(start)]
    return index


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
        scores_line = f"Scores: {scores} ({len(out):,} rows, scored with version 1)"
        model_line = f"Model:  version 1 (published by this run) under {version.parent}"

        # what the terminal shows (pipeline.tasks.console): a line as each task starts and
        # ends, a few epochs, then what the run made and where; the rest is in the logs
        shown = terminal_lines(first.stdout + first.stderr)
        assert len(shown) <= 30 and shown[-2:] == [scores_line, model_line], shown
        for stage in ("DownloadCorpus", "BuildVocab", "TrainRNN", "ExportSavedModel",
                      "PromoteVersion", "ScoreLocally (2026-11-25)"):
            started, done = shown.index(f"{stage} started"), _index(shown, f"{stage} done in ")
            assert started < done, shown
        assert _index(shown, "TrainRNN epoch 1/") < _index(shown, "TrainRNN done in ")
        assert not [line for line in shown if line.startswith(
            ("DEBUG", "INFO", "I0000", "W0000", "E0000", "WARNING: All log"))], shown
        logs = outputs / "logs"
        log = (logs / "pipeline.log").read_text()
        assert "This progress looks :) because there were no failed tasks" in log
        assert log.count("Execution Summary") == 2  # once (its two rulers), not twice
        assert f"TrainRNN epoch {len(history)}/" in log  # every epoch is in the log file
        assert (logs / "stderr.log").read_text().startswith("--- ")  # TensorFlow's C++ lines

        second = run_luigi(*args, env=env)
        assert second.returncode == 0
        assert terminal_lines(second.stdout + second.stderr) == [
            "BatchScore (2026-11-25) is complete already: nothing to run",
            f"  {scores_line}", f"  {model_line.replace('published by this run', 'live')}"]
