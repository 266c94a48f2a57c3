"""The Luigi chain on the small corpus, in process, as luigi's own tests run pipelines."""
import configparser
import json
import datetime as dt
import os
import types

import luigi
import pandas as pd
import pytest

from conftest import REPO, luigi_config
from pipeline import tasks


def _mtimes(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_chain_scores_every_input_row_then_a_rerun_does_nothing(small_chain, tmp_path):
    messages = tmp_path / "batch.csv"
    texts = ["WINNER!! claim your £1000 prize now", "see you at 8?", "", "NA", "ok"] * 3
    pd.DataFrame({"text": texts}).to_csv(messages, index=False)
    with luigi_config(small_chain["settings"]):
        score = tasks.BatchScore(input=str(messages), date=dt.date(2026, 1, 2))
        assert luigi.build([score], local_scheduler=True, log_level="WARNING")
        out = pd.read_csv(score.output().path, dtype={"text": str}, keep_default_na=False)
        assert out["text"].tolist() == texts
        assert out["id"].tolist() == list(range(1, len(texts) + 1))
        assert set(out["model_version"]) == {1}
        assert set(out["label"]) <= {"spam", "ham"}
        assert "2026-01-02" in score.output().path

        before = _mtimes(small_chain["outputs"])
        result = luigi.build([score], local_scheduler=True, log_level="WARNING",
                             detailed_summary=True)
        assert result.status == luigi.LuigiStatusCode.SUCCESS
        assert "complete ones were encountered" in result.summary_text
        assert _mtimes(small_chain["outputs"]) == before


def test_a_file_edited_between_two_same_day_runs_is_scored_again(small_chain, tmp_path):
    """Never answered with its old scores: the new content makes a new target, the old
    one is kept, and each records the file it scored."""
    messages = tmp_path / "mine.txt"
    messages.write_text("see you at 8?\nWINNER!! claim your prize now\n", encoding="utf-8")
    day = dt.date(2026, 1, 4)
    with luigi_config(small_chain["settings"]):
        first = tasks.BatchScore(input=str(messages), date=day)
        assert luigi.build([first], local_scheduler=True, log_level="WARNING")
        first_path = first.output().path
        messages.write_text("a new message\nsee you at 8?\nand another one\n",
                            encoding="utf-8")
        again = tasks.BatchScore(input=str(messages), date=day)
        assert not again.complete()
        assert luigi.build([again], local_scheduler=True, log_level="WARNING")
        second_path = again.output().path
    assert second_path != first_path
    old = pd.read_csv(first_path, keep_default_na=False)
    new = pd.read_csv(second_path, keep_default_na=False)
    assert old["text"].tolist() == ["see you at 8?", "WINNER!! claim your prize now"]
    assert new["text"].tolist() == ["a new message", "see you at 8?", "and another one"]
    record = json.loads(open(second_path + ".input.json").read())
    assert record["rows"] == 3 and record["input"] == str(messages)
    [stamp] = record["files"]
    assert stamp["path"] == str(messages) and stamp["size"] == messages.stat().st_size
    assert stamp["modified_ns"] == messages.stat().st_mtime_ns


def test_a_file_changed_while_it_is_scored_publishes_nothing(small_chain, tmp_path):
    from pipeline.scoring.input_stamp import InputChangedError

    messages = tmp_path / "growing.txt"
    messages.write_text("first line\n", encoding="utf-8")
    with luigi_config(small_chain["settings"]):
        score = tasks.BatchScore(input=str(messages), date=dt.date(2026, 1, 5)).requires()
        assert isinstance(score, tasks.ScoreLocally)  # BatchScore's engine
        score.set_status_message = score.set_progress_percentage = lambda value: None
        original = score._record_input

        def append_then_record(rows):  # the file grows after it was read
            with open(messages, "a", encoding="utf-8") as handle:
                handle.write("a late line\n")
            original(rows)

        score._record_input = append_then_record
        with pytest.raises(InputChangedError, match="changed while it was being scored"):
            for _ in score.run() or ():
                pass
        assert not list((small_chain["outputs"] / "scores" / "2026-01-05").glob("growing*"))


def test_a_date_default_is_the_day_the_task_is_made_not_imported(monkeypatch):
    """A worker or scheduler process started yesterday schedules today (the task classes
    were imported yesterday)."""
    today = dt.date.today()
    assert tasks.BatchScore().date == today and tasks.MonitorScores().date == today

    tomorrow = today + dt.timedelta(days=1)

    class Tomorrow(dt.date):  # the clock the next day, in the same process
        @classmethod
        def today(cls):
            return tomorrow

    from pipeline.tasks import base

    monkeypatch.setattr(base, "dt", types.SimpleNamespace(date=Tomorrow))
    luigi.task_register.Register.clear_instance_cache()
    assert tasks.BatchScore().date == tomorrow
    assert tasks.ReviewQueue().date == tomorrow
    assert tasks.BatchScore(date=today).date == today  # a given date still wins


def test_default_batch_is_the_corpus_test_split(small_chain):
    with luigi_config(small_chain["settings"]):
        score = tasks.BatchScore(date=dt.date(2026, 1, 3))
        assert luigi.build([score], local_scheduler=True, log_level="WARNING")
        table = pd.read_csv(small_chain["corpus"] / "messages.csv", keep_default_na=False)
        out = pd.read_csv(score.output().path, keep_default_na=False)
        assert out["id"].tolist() == table.loc[table.split == "test", "line"].tolist()


def test_promoting_the_same_export_again_adds_no_version(small_chain):
    with luigi_config(small_chain["settings"]):
        promote = tasks.PromoteVersion()
        assert promote.complete()
        promote.set_status_message = lambda message: None  # set by a worker otherwise
        promote.run()  # as a forced re-run would
    assert sorted(p.name for p in small_chain["serving"].iterdir()) == ["1"]


def test_a_changed_hyperparameter_or_corpus_makes_new_targets(small_chain):
    with luigi_config(small_chain["settings"]):
        base = {t: t().fingerprint() for t in (tasks.TrainRNN, tasks.ExportSavedModel)}
        base_id = tasks.TrainRNN().task_id
        assert tasks.TrainRNN(seed=1).fingerprint() != base[tasks.TrainRNN]
        assert tasks.TrainRNN(batch_size=16).fingerprint() == base[tasks.TrainRNN]
    changed = {**small_chain["settings"],
               "TrainRNN": {**small_chain["settings"]["TrainRNN"], "rnn_units": 5}}
    with luigi_config(changed):
        assert tasks.ExportSavedModel().fingerprint() != base[tasks.ExportSavedModel]
        assert not tasks.PromoteVersion().complete()
    other_corpus = {**small_chain["settings"],
                    "DownloadCorpus": {**small_chain["settings"]["DownloadCorpus"],
                                       "split_seed": 5}}
    with luigi_config(other_corpus):
        assert tasks.TrainRNN().fingerprint() != base[tasks.TrainRNN]
    mirror = {**small_chain["settings"],
              "DownloadCorpus": {**small_chain["settings"]["DownloadCorpus"],
                                 "url": "https://mirror.invalid/sms.zip"}}
    with luigi_config(mirror):  # where the bytes come from does not change what they are
        assert tasks.TrainRNN().fingerprint() == base[tasks.TrainRNN]
    architecture = {**small_chain["settings"], "model": {"teacher_weight": 0.5}}
    with luigi_config(architecture):  # a [model] setting names the target, not the task id
        assert tasks.TrainRNN().task_id == base_id
        assert tasks.TrainRNN().fingerprint() != base[tasks.TrainRNN]
        assert tasks.TrainRNN().model_config().teacher_weight == 0.5
        assert not tasks.PromoteVersion().complete()


def test_train_rnn_has_at_most_a_dozen_significant_parameters():
    """The dashboard's row of a training stays readable: the architecture's settings are
    [model], named by their digest in the target."""
    significant = [name for name, p in tasks.TrainRNN.get_params() if p.significant]
    assert len(significant) <= 12, significant
    with luigi_config({}):
        assert len(tasks.TrainRNN().task_id) < 80


def test_new_tokenization_rules_make_a_new_vocabulary_and_model(small_chain, monkeypatch):
    from pipeline.data import token_rules

    with luigi_config(small_chain["settings"]):
        before = {t: t().fingerprint() for t in (tasks.BuildVocab, tasks.TrainRNN)}
        monkeypatch.setattr(token_rules, "NUMBER_SHAPES", ((r"\d{4,}", "xxnum"),))
        assert tasks.BuildVocab().fingerprint() != before[tasks.BuildVocab]
        assert tasks.TrainRNN().fingerprint() != before[tasks.TrainRNN]
        assert not tasks.PromoteVersion().complete()


def test_the_spark_engine_without_an_input_says_the_test_split_is_the_local_engines():
    engine = tasks.BatchScore(engine="spark").requires()
    assert isinstance(engine, tasks.ScoreOnSpark)
    assert isinstance(engine.requires()["messages"], tasks.DownloadCorpus)
    assert isinstance(engine.requires()["model"], tasks.PromoteVersion)
    with pytest.raises(ValueError, match="--engine spark scores an --input"):
        engine.run()


def test_missing_batch_input_is_reported_as_missing_data(small_chain, tmp_path):
    with luigi_config(small_chain["settings"]):
        score = tasks.BatchScore(input=str(tmp_path / "absent.csv"), date=dt.date(2026, 1, 4))
        result = luigi.build([score], local_scheduler=True, log_level="WARNING",
                             detailed_summary=True)
        assert result.status == luigi.LuigiStatusCode.MISSING_EXT
        assert not os.path.exists(score.output().path)


def test_every_setting_in_luigi_cfg_is_a_real_parameter():
    config = configparser.ConfigParser()
    config.read(REPO / "luigi.cfg")
    known = {"pipeline": tasks.PipelineSettings, "DownloadCorpus": tasks.DownloadCorpus,
             "BuildVocab": tasks.BuildVocab, "TrainRNN": tasks.TrainRNN,
             "PromoteVersion": tasks.PromoteVersion, "BatchScore": tasks.BatchScore,
             "spark": tasks.SparkSettings, "model": tasks.ModelSettings,
             "ReviewQueue": tasks.ReviewQueue,
             "MonitorScores": tasks.MonitorScores}
    assert set(known) == {s for s in config.sections() if s[0].isupper() or s in known}
    for section, task in known.items():
        parameters = dict(task.get_params())
        for option in config[section]:
            assert option in parameters, f"[{section}] {option} is not a parameter of {task}"
            # A setting says what it is: in luigi.cfg's comments for the model's
            # hyperparameters, in its description (shown by --help) for the others.
            assert parameters[option].description or parameters[option].significant is False \
                or section in ("TrainRNN", "BuildVocab", "model"), f"[{section}] {option}"


def test_the_model_defaults_have_one_source_that_luigi_cfg_documents():
    """TrainRNN's parameters and [model]'s settings default to
    pipeline.model.config.DEFAULTS; luigi.cfg lists each of them, commented out, in its
    section, with the same value."""
    import re

    from pipeline.model.config import ARCHITECTURE, DEFAULTS, TUNED

    documented = {}
    for section, task, names in (("TrainRNN", tasks.TrainRNN, TUNED),
                                 ("model", tasks.ModelSettings, ARCHITECTURE)):
        params = dict(task.get_params())
        for name in names:
            assert params[name]._default == getattr(DEFAULTS, name), name
        cfg = (REPO / "luigi.cfg").read_text()
        text = cfg.split(f"\n[{section}]\n", 1)[1].split("\n[", 1)[0]
        found = dict(re.findall(r"^# (\w+) = (.*)$", text, flags=re.MULTILINE))
        assert set(found) == set(names), section
        documented.update(found)
    for name, value in documented.items():
        kind = type(getattr(DEFAULTS, name))
        parsed = value == "true" if kind is bool else kind(value)
        assert parsed == getattr(DEFAULTS, name), f"luigi.cfg documents {name} = {value}"
    with luigi_config({}):
        assert tasks.TrainRNN().model_config() == DEFAULTS


@pytest.mark.parametrize("task", [tasks.DownloadCorpus, tasks.BuildVocab, tasks.TrainRNN,
                                  tasks.ExportSavedModel])
def test_task_outputs_live_under_outputs_root(small_chain, task):
    with luigi_config(small_chain["settings"]):
        assert str(task().output_folder()).startswith(str(small_chain["outputs"]))


def test_same_parameters_and_seed_train_the_same_weights(small_chain, tmp_path):
    """Reproducible: a second training in another outputs folder, same settings and seed,
    gives the same metrics and the same weights (checksum)."""
    settings = {**small_chain["settings"], "pipeline": {"outputs_root": tmp_path / "again"}}
    with luigi_config(settings):
        train = tasks.TrainRNN()
        assert luigi.build([train], local_scheduler=True, log_level="WARNING")
        again = json.loads((train.output_folder() / "metrics.json").read_text())
    first = json.loads((small_chain["training"] / "metrics.json").read_text())
    assert again["weights_sha256"] == first["weights_sha256"]
    assert again["test"] == first["test"] and again["threshold"] == first["threshold"]


def test_training_writes_a_report_people_can_look_at(small_chain):
    report = small_chain["training"] / "report"
    page = (report / "report.html").read_text()
    for image in ("learning_curves.png", "confusion_matrix.png", "roc_pr.png"):
        assert f'src="{image}"' in page
        assert (report / image).read_bytes().startswith(b"\x89PNG")
    wrong = pd.read_csv(report / "misclassified.csv")
    assert list(wrong.columns) == ["true_label", "spam_probability", "text"]


def test_batch_scores_equal_what_the_served_signature_answers(small_chain, tmp_path):
    """Batch/online parity: BatchScore's probabilities are those of the live version's
    serving_default signature for the same texts (float32, written in full precision)."""
    import numpy as np

    from pipeline.serving import exported_model

    texts = ["WINNER!! claim your £1000 prize, call 09061234567", "see you at 8?", "",
             "free entry to win a holiday", "ok lar", "中文 😀"] * 5
    messages = tmp_path / "parity.txt"
    messages.write_text("\n".join(texts) + "\n")
    with luigi_config(small_chain["settings"]):
        score = tasks.BatchScore(input=str(messages), date=dt.date(2026, 1, 5), batch_size=4)
        assert luigi.build([score], local_scheduler=True, log_level="WARNING")
        batch = pd.read_csv(score.output().path, keep_default_na=False)
    served = exported_model.ServingSignature(small_chain["serving"] / "1")
    probabilities, labels = served(texts)
    np.testing.assert_allclose(batch["spam_probability"].to_numpy(np.float32), probabilities,
                               rtol=0, atol=1e-6)
    assert batch["label"].tolist() == labels.tolist()
