"""PromoteVersion's gate, smoke test, pruning, audit log, rollback and TF Serving's
deployment files."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import luigi
import pytest

from conftest import REPO, luigi_config, write_cfg
from pipeline.serving import deployment
from pipeline.serving import promotion
from pipeline.serving import model_base
from pipeline import tasks

BIN = Path(sys.executable).parent


def _with(settings, section, **options):
    return {**settings, section: {**settings.get(section, {}), **options}}


def _worse(settings):
    """A deliberately worse model (one epoch at a tiny learning rate), and a lax absolute
    floor so that only the comparison with the live version can refuse it."""
    worse = _with(_with(settings, "TrainRNN", epochs=1, learning_rate=0.0003),
                  "model", ngram_member=0, word_grams=0)  # and no n-gram member, which
    # learns in one epoch
    return _with(worse, "PromoteVersion", min_mcc=-1, max_ham_blocked=1, min_spam_caught=0)


def test_a_worse_model_is_refused_then_forced_then_rolled_back(chain_copy):
    outputs, settings = chain_copy
    base = outputs / "serving" / "spam_ham"
    with luigi_config(_worse(settings)):
        result = luigi.build([tasks.PromoteVersion()], local_scheduler=True,
                             log_level="CRITICAL", detailed_summary=True)
        assert result.status == luigi.LuigiStatusCode.FAILED
        staged = tasks.ExportSavedModel().output_folder()
        assert staged.is_dir(), "the refused candidate stays staged"
    assert model_base.serving_versions(base) == [1]
    [refusal] = [r for r in model_base.read_audit(base) if r["event"] == "refused"]
    assert any("a regression against the live version" in reason and "p = " in reason
               for reason in refusal["reasons"]), refusal
    assert refusal["live_version"] == 1
    assert refusal["paired"]["spam"]["worse"] > refusal["paired"]["spam"]["better"]
    assert set(refusal["verdicts"]) == {"ham", "spam"}

    with luigi_config(_with(_worse(settings), "PromoteVersion", force="true")):
        assert luigi.build([tasks.PromoteVersion()], local_scheduler=True, log_level="CRITICAL")
    assert model_base.serving_versions(base) == [1, 2]
    promoted = model_base.read_audit(base)[-1]
    assert promoted["event"] == "promoted" and promoted["forced_past"]

    rolled = subprocess.run(  # the documented command, in a process of its own
        [str(BIN / "spam-ham-versions"), "rollback", "1", "--reason", "worse"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"LUIGI_CONFIG_PATH": str(write_cfg(outputs.parent / "luigi.cfg", settings)),
             "PATH": "/usr/bin:/bin"})
    assert rolled.returncode == 0, rolled.stderr
    assert json.loads(rolled.stdout)["new_version"] == 3
    assert model_base.live_version(base) == 3
    assert (base / "3" / "saved_model.pb").read_bytes() == (base / "1" / "saved_model.pb").read_bytes()
    assert model_base.version_provenance(base, 3)["copy_of_version"] == 1
    assert model_base.read_audit(base)[-1]["event"] == "rolled_back"
    with luigi_config(settings):  # the rollback sticks: nothing re-promotes the original
        assert tasks.PromoteVersion().complete()


def test_a_model_below_the_floor_is_refused_with_metric_values_and_setting(chain_copy):
    outputs, settings = chain_copy
    with luigi_config(_with(settings, "PromoteVersion", min_mcc=1.01)):
        promote = tasks.PromoteVersion()
        promote.set_status_message = lambda message: None
        shutil.rmtree(outputs / "serving" / "spam_ham")  # nothing live: only the floor applies
        with pytest.raises(promotion.PromotionRefused) as refused:
            promote.run()
    message = str(refused.value)
    assert "test MCC" in message and "below the floor 1.01" in message
    assert "[PromoteVersion] min_mcc" in message and "--PromoteVersion-force" in message


def test_a_broken_candidate_fails_the_smoke_test_and_is_not_published(chain_copy):
    outputs, settings = chain_copy
    with luigi_config(_with(settings, "TrainRNN", seed=11)):
        assert luigi.build([tasks.ExportSavedModel()], local_scheduler=True,
                           log_level="CRITICAL")
        staged = tasks.ExportSavedModel().output_folder()
        shutil.rmtree(staged / "variables")
        promote = tasks.PromoteVersion()
        promote.set_status_message = lambda message: None
        with pytest.raises(promotion.PromotionRefused, match="smoke test"):
            promote.run()
    assert model_base.serving_versions(outputs / "serving" / "spam_ham") == [1]


def test_a_smoke_test_with_no_verdict_in_time_is_a_refusal(tmp_path, monkeypatch):
    """The smoke test's process is killed at its timeout and the candidate refused, with
    the reason in the message and in the audit log."""
    monkeypatch.setattr(promotion.SmokeTest, "TIMEOUT_SECONDS", 0.01)  # Python starts slower
    base = tmp_path / "spam_ham"
    base.mkdir()
    smoke = promotion.SmokeTest(tmp_path / "staged")
    with pytest.raises(promotion.PromotionRefused, match="no verdict within 0.01 s"):
        smoke.check(base, "abc123")
    [record] = model_base.read_audit(base)
    assert record["event"] == "refused" and record["export_id"] == "abc123"
    assert record["reasons"] == ["no verdict within 0.01 s"]


def test_pruning_keeps_the_newest_versions(tmp_path):
    base = tmp_path / "spam_ham"
    for version in range(1, 6):
        (base / str(version)).mkdir(parents=True)
    with model_base.promotion_lock(base):
        assert model_base.prune_versions(base, keep=2) == [1, 2, 3]
    assert model_base.serving_versions(base) == [4, 5]
    assert sorted(p.name for p in base.iterdir()) == ["4", "5"]


def test_deployment_files_parse_with_tf_servings_protos(small_chain, tmp_path):
    """`spam-ham-versions model-config` writes the model config, batching parameters and
    monitoring config; each parses back as the server parses it, and the printed server
    command names all three."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    base = small_chain["serving"]
    cfg = write_cfg(tmp_path / "luigi.cfg", {
        **small_chain["settings"],
        "pipeline": {"outputs_root": small_chain["outputs"], "model_name": "spam_ham"}})

    def versions(*args):
        return subprocess.run([str(BIN / "spam-ham-versions"), *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120,
                              env={"LUIGI_CONFIG_PATH": str(cfg), "PATH": "/usr/bin:/bin"})

    labelled = versions("model-config", "--stable", "1", "--canary", "1",
                        "--folder", str(tmp_path / "labels"))
    assert labelled.returncode == 0, labelled.stderr
    written = json.loads(labelled.stdout)
    config = deployment.read_text_proto(written["model_config_file"],
                                        model_server_config_pb2.ModelServerConfig)
    [model] = config.model_config_list.config
    assert (model.name, model.base_path) == ("spam_ham", str(base.resolve()))
    assert dict(model.version_labels) == {"stable": 1, "canary": 1}
    assert list(model.model_version_policy.specific.versions) == [1, 1]
    batching = deployment.read_text_proto(written["batching_parameters_file"],
                                          deployment.BatchingParameters)
    assert batching.max_batch_size.value == deployment.Batching().max_batch_size
    assert batching.num_batch_threads.value == deployment.Batching().num_batch_threads
    monitoring = deployment.read_text_proto(written["monitoring_config_file"],
                                            deployment.MonitoringConfig)
    assert monitoring.prometheus_config.enable
    assert monitoring.prometheus_config.path == deployment.PROMETHEUS_PATH
    for flag in ("model_config_file", "batching_parameters_file", "monitoring_config_file"):
        assert f"--{flag}={written[flag]}" in written["server_command"]
    assert "--enable_batching" in written["server_command"]
    assert "--model_config_file_poll_wait_seconds=" in written["server_command"]

    newest = versions("model-config", "--folder", str(tmp_path / "newest"))
    assert newest.returncode == 0, newest.stderr
    config = deployment.read_text_proto(tmp_path / "newest" / deployment.MODEL_CONFIG,
                                        model_server_config_pb2.ModelServerConfig)
    assert config.model_config_list.config[0].model_version_policy.latest.num_versions == 1

    missing = versions("model-config", "--stable", "9", "--folder", str(tmp_path / "bad"))
    assert missing.returncode == 1 and "[9] are not under" in missing.stderr
    assert not (tmp_path / "bad").exists()
    with pytest.raises(text_format.ParseError, match="no field named"):
        text_format.Parse("max_batch_size { value: 8 }\nmax_batch_sise { value: 8 }",
                          deployment.BatchingParameters())
