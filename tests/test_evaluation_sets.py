"""Evaluation sets: reading the accepted formats, clear errors, and what training records."""
import json

import luigi
import pytest

from conftest import REPO, luigi_config
from pipeline.data import evaluation_sets
from pipeline.serving import exported_model
from pipeline import tasks
from pipeline.data.evaluation_sets import EvaluationSetError

OOD = REPO.parent / "shared" / "data" / "sms-ood-dev"


def _write(tmp_path, name, content, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(content.encode(encoding) if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize("name, messages, spam", [("super_sms_legacy", 1732, 232),
                                                 ("mishra_soni_2022", 826, 364)])
def test_reads_the_other_collections_as_their_source_describes_them(name, messages, spam):
    path = OOD / f"{name}.tsv"
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared is not beside the repository)")
    held_out = evaluation_sets.read_evaluation_set(path)
    assert (held_out.name, len(held_out.texts), int(held_out.labels.sum())) == (name, messages,
                                                                                spam)
    assert all(held_out.texts)


def test_reads_label_tab_text_lines_and_tables_with_a_header(tmp_path):
    lines = _write(tmp_path, "lines.txt", "ham\tsee you, at 8\nSPAM\tWIN\t£100 now\n\n")
    csv = _write(tmp_path, "table.csv",
                 'id,text,label\n1,"hello, there",ham\n2,"WIN\nnow",spam\n')
    tsv = _write(tmp_path, "table.tsv", "label\ttext\nspam\tfree entry\nham\tok\n")
    assert evaluation_sets.read_evaluation_set(lines).texts == ["see you, at 8", "WIN\t£100 now"]
    table = evaluation_sets.read_evaluation_set(csv)
    assert table.texts == ["hello, there", "WIN\nnow"]
    assert table.labels.tolist() == [False, True]
    assert evaluation_sets.read_evaluation_set(tsv).labels.tolist() == [True, False]
    assert evaluation_sets.paths_from_setting(" a.tsv, ,b.csv ") == ["a.tsv", "b.csv"]


@pytest.mark.parametrize("name, content, expected", [
    ("bad_label.tsv", "ham\thi\nspam\tWIN\nphish\tclick\n", "line 3: label 'phish'"),
    ("bad_label.csv", "label,text\nham,hi\nmaybe,x\n", "line 3: label 'maybe'"),
    ("no_text.csv", "label,message\nham,hi\n", "no 'text' column"),
    ("no_tab.tsv", "ham\thi\nspam WIN now\n", "line 2: no tab"),
    ("latin1.tsv", "ham\tcaf\u00e9\n".encode("latin-1"), "line 1: byte 0xe9 is not UTF-8"),
    ("empty.tsv", "\n", "is empty"),
])
def test_a_bad_file_names_the_file_and_line(tmp_path, name, content, expected):
    path = _write(tmp_path, name, content)
    with pytest.raises(EvaluationSetError) as error:
        evaluation_sets.read_evaluation_set(path)
    assert expected in str(error.value) and str(path) in str(error.value)


def test_missing_files_and_repeated_names_are_refused(tmp_path):
    with pytest.raises(EvaluationSetError, match="cannot be read.*evaluation_sets"):
        evaluation_sets.read_evaluation_sets([str(tmp_path / "absent.tsv")])
    (tmp_path / "a").mkdir()
    one = _write(tmp_path, "set.tsv", "ham\thi\n")
    two = _write(tmp_path / "a", "set.tsv", "spam\tWIN\n")
    with pytest.raises(EvaluationSetError, match="distinct file names"):
        evaluation_sets.read_evaluation_sets([str(one), str(two)])


def test_training_scores_each_set_into_metrics_report_and_export(small_chain):
    result = json.loads((small_chain["training"] / "metrics.json").read_text())
    held_out = result["evaluation_sets"]["held_out"]
    assert (held_out["messages"], held_out["spam"]) == (4, 2)
    assert held_out["threshold"] == result["threshold"]
    assert sum(held_out["confusion_matrix"].values()) == 4
    for key in ("roc_auc", "spam_caught", "ham_blocked", "mcc", "sha256"):
        assert key in held_out
    report = small_chain["training"] / "report"
    assert "Evaluation set held_out" in (report / "report.html").read_text()
    assert (report / "roc_pr_held_out.png").stat().st_size > 0
    assert (report / "misclassified_held_out.csv").is_file()
    provenance = exported_model.read_provenance(small_chain["export"])
    assert provenance["metrics"]["evaluation_sets"]["held_out"]["sha256"] == held_out["sha256"]


def test_a_bad_evaluation_set_fails_training_before_it_starts(small_chain, tmp_path):
    bad = _write(tmp_path, "bad.tsv", "ham\tfine\nspamm\tWIN\n")
    settings = {**small_chain["settings"],
                "pipeline": {"outputs_root": tmp_path / "outputs"},
                "TrainRNN": {**small_chain["settings"]["TrainRNN"], "evaluation_sets": bad}}
    with luigi_config(settings):
        result = luigi.build([tasks.TrainRNN()], local_scheduler=True, log_level="WARNING",
                             detailed_summary=True)
        assert result.status == luigi.LuigiStatusCode.FAILED
        assert not tasks.TrainRNN().output().exists()
        with pytest.raises(EvaluationSetError, match=r"bad.tsv, line 2: label 'spamm'"):
            tasks.TrainRNN().run()
