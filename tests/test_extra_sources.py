"""Extra labelled sources: formats, clear errors, de-duplication, per-source splits, the
fingerprint following content, and a retrain that is measured and gated per source."""
import hashlib
import json
import shutil

import luigi
import numpy as np
import pytest

from conftest import REPO, luigi_config, serve_folder
from pipeline.data import corpus, download
from pipeline.serving import promotion
from pipeline.serving import model_base
from pipeline import tasks

OOD = REPO.parent / "shared" / "data" / "sms-ood-dev"
FAST = download.DownloadPolicy(connect_timeout=2, read_timeout=2, attempts=1, backoff_seconds=0)


def _write(folder, name, content):
    path = folder / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def _read(path):
    spec = corpus.SourceSpec(str(path))
    return corpus.read_source(corpus.fetch_source(spec, FAST), spec)


def test_every_format_reads_the_same_messages(tmp_path):
    lines = _write(tmp_path, "lines.txt", "ham\tsee you at 8\nSPAM\tWIN £100 now\n")
    tsv = _write(tmp_path, "table.tsv", "id\tlabel\ttext\n1\tham\tsee you at 8\n2\tspam\tWIN £100 now\n")
    csv = _write(tmp_path, "table.csv", 'text,label\n"see you at 8",ham\n"WIN £100 now",Spam\n')
    jsonl = _write(tmp_path, "feed.jsonl", '{"label": "ham", "text": "see you at 8"}\n\n'
                                           '{"text": "WIN £100 now", "label": "spam"}\n')
    for path in (lines, tsv, csv, jsonl):
        source = _read(path)
        assert source.texts == ["see you at 8", "WIN £100 now"], path
        assert source.labels.tolist() == [False, True]
        assert source.name == path.stem
    assert _read(jsonl).lines == [1, 3]
    assert _read(csv).lines == [2, 3]


@pytest.mark.parametrize("name, content, expected", [
    ("label.tsv", "ham\thi\nphish\tclick here\n", "line 2: label 'phish' is not 'ham' or 'spam'"),
    ("unlabelled.csv", "id,text,label\n1,hi,ham\n2,win,\n",
     "line 3: label '' is not 'ham' or 'spam': label every row"),
    ("column.csv", "label,message\nham,hi\n", "no 'text' column"),
    ("latin1.tsv", "ham\tcaf\u00e9\n".encode("latin-1"), "line 1: byte 0xe9 is not UTF-8"),
    ("nul.tsv", b"ham\thi\nspam\tw\x00in\n", "line 2: NUL bytes"),
    ("empty.tsv", b"", "is empty"),
    ("blank.jsonl", "\n\n", "is empty"),
    ("json.jsonl", '{"label": "ham", "text": "hi"}\n{"label": "spam"\n', "line 2: not JSON"),
    ("keys.jsonl", '{"label": "ham", "message": "hi"}\n', "line 1: expected an object"),
    ("text.tsv", "ham\thi\nspam\t  \n", "line 2: the text is empty"),
])
def test_a_bad_source_names_the_file_line_and_setting(tmp_path, name, content, expected):
    path = _write(tmp_path, name, content)
    with pytest.raises(corpus.CorpusError) as error:
        _read(path)
    message = str(error.value)
    assert expected in message and str(path) in message
    assert "[DownloadCorpus] extra_sources" in message


def test_a_failing_url_a_missing_file_and_a_wrong_pin_are_refused(tmp_path):
    source = _write(tmp_path, "feedback.tsv", "ham\thi\n")
    with serve_folder(tmp_path) as url:
        spec = corpus.sources_from_setting(f"{url}/absent.tsv")[0]
        with pytest.raises(corpus.CorpusError, match=r"HTTP 404.*extra_sources"):
            corpus.fetch_source(spec, FAST)
        assert _read(f"{url}/feedback.tsv").texts == ["hi"]
    with pytest.raises(corpus.CorpusError, match=r"does not exist \(\[DownloadCorpus\] extra"):
        _read(tmp_path / "absent.tsv")
    wrong = corpus.sources_from_setting(f"{source}#sha256={'0' * 64}")[0]
    actual = hashlib.sha256(source.read_bytes()).hexdigest()
    with pytest.raises(corpus.CorpusError, match=f"has sha256 {actual}, expected 0000"):
        corpus.fetch_source(wrong, FAST)
    with pytest.raises(corpus.CorpusError, match="64 hex digits"):
        corpus.sources_from_setting(f"{source}#sha256=abc")
    with pytest.raises(corpus.CorpusError, match="named by their file name"):
        corpus.sources_from_setting(f"{source}, other/feedback.tsv")


def test_sources_are_deduplicated_split_on_their_own_and_recorded(tmp_path, small_corpus):
    plain, _ = corpus.build_corpus_table(small_corpus, 0, 0.01)
    known = plain.text.iloc[0]
    other_label = "spam" if plain.label.iloc[0] == "ham" else "ham"
    rows = ([f"spam\tnew offer number {i}, reply STOP" for i in range(20)]
            + [f"ham\tsee you at the station at {i}" for i in range(30)]
            + ["ham\tsee you at the station at 0",      # repeated inside the source
               f"{other_label}\t{known}"])               # in the corpus, with the other label
    first = _read(_write(tmp_path, "first.tsv", "\n".join(rows) + "\n"))
    second = _read(_write(tmp_path, "second.tsv",
                          "spam\tnew offer number 3, reply STOP\nham\tall new, on the bus\n"))
    table, stats = corpus.build_corpus_table(small_corpus, 0, 0.01, [first, second])

    corpus_part = table[table.source == corpus.CORPUS_SOURCE].reset_index(drop=True)
    assert corpus_part[["line", "label", "text", "split"]].equals(
        plain[["line", "label", "text", "split"]])  # the corpus's split never moves
    assert table.text.is_unique
    assert table.loc[table.text == known, "label"].tolist() == [plain.label.iloc[0]]
    added = table[table.source == "first"]
    assert len(added) == 50
    assert added.groupby(["split", "label"]).size().to_dict() == {
        ("test", "ham"): 6, ("test", "spam"): 4, ("train", "ham"): 21, ("train", "spam"): 14,
        ("validation", "ham"): 3, ("validation", "spam"): 2}
    by_name = {s["name"]: s for s in stats["sources"]}
    assert by_name["first"]["repeated_texts_dropped"] == 2
    assert by_name["first"]["conflicting_labels"] == 1
    assert by_name["first"]["sha256"] == first.sha256
    assert by_name["second"]["messages"] == 1 and by_name["second"]["repeated_texts_dropped"] == 1
    assert stats["messages"] == len(table)
    assert "first occurrence wins" in stats["label_conflict_rule"]
    assert corpus.sources_of(table) == [corpus.CORPUS_SOURCE, "first", "second"]



def test_a_source_whose_messages_all_repeat_is_accepted_with_one_warning(
        small_pipeline, small_corpus, tmp_path, caplog):
    """The same spam labelled again next week: the weekly retrain over feedback/*.csv must
    not break on a file that adds nothing."""
    plain, _ = corpus.build_corpus_table(small_corpus, 0, 0.01)
    copies = _write(tmp_path, "copies.tsv", "".join(
        f"{label}\t{text}\n" for label, text in zip(plain.label[:3], plain.text[:3])))
    table, stats = corpus.build_corpus_table(small_corpus, 0, 0.01, [_read(copies)])
    assert table.equals(plain)
    [entry] = [s for s in stats["sources"] if s["name"] == "copies"]
    assert entry["messages"] == 0 and entry["repeated_texts_dropped"] == 3
    assert "every text of extra source" in entry["warning"]
    with luigi_config({"DownloadCorpus": {"extra_sources": copies}}):
        caplog.set_level("WARNING", logger="luigi-interface")
        assert luigi.build([tasks.DownloadCorpus()], local_scheduler=True, log_level="WARNING")
    warnings = [r.getMessage() for r in caplog.records if "adds nothing" in r.getMessage()]
    assert len(warnings) == 1 and "copies.tsv" in warnings[0], warnings


def test_the_fingerprint_follows_the_content_not_the_path(small_pipeline, tmp_path):
    source = _write(tmp_path, "feedback.tsv", "ham\thello there\nspam\tWIN now\n")
    (tmp_path / "moved").mkdir()
    moved = shutil.copy(source, tmp_path / "moved" / "feedback.tsv")

    def fingerprints(setting):
        luigi.task_register.Register.clear_instance_cache()
        with luigi_config({"DownloadCorpus": {"extra_sources": setting}}):
            return tasks.DownloadCorpus().fingerprint(), tasks.TrainRNN().fingerprint()

    without = fingerprints("")
    with_source = fingerprints(str(source))
    assert with_source[0] != without[0] and with_source[1] != without[1]
    assert fingerprints(str(moved)) == with_source
    pinned = f"{moved}#sha256={hashlib.sha256(source.read_bytes()).hexdigest()}"
    assert fingerprints(pinned) == with_source
    source.write_text("ham\thello there\nspam\tWIN now\nham\tone more\n")
    changed = fingerprints(str(source))
    assert changed[0] not in (with_source[0], without[0])


def test_a_bad_source_fails_the_corpus_task_and_leaves_no_target(small_pipeline, tmp_path):
    bad = _write(tmp_path, "bad.csv", "label,text\nham,hi\nmaybe,x\n")
    with luigi_config({"DownloadCorpus": {"extra_sources": bad}}):
        task = tasks.DownloadCorpus()
        result = luigi.build([task], local_scheduler=True, log_level="CRITICAL",
                             detailed_summary=True)
        assert result.status == luigi.LuigiStatusCode.FAILED
        assert not task.output().exists()
        with pytest.raises(corpus.CorpusError, match=r"bad.csv, line 3: label 'maybe'"):
            task.run()


def _new_messages(count):
    """Messages unlike the small corpus: a new kind of spam and new ham."""
    rng = np.random.default_rng(3)
    spam = [f"spam\tyour parcel {rng.integers(10**5, 10**6)} is held, pay the fee at "
            f"parcel-{i}.example.com" for i in range(count // 3)]
    ham = [f"ham\tthe parcel for grandma {i} arrived, thanks for sending it"
           for i in range(count - count // 3)]
    return "\n".join(spam + ham) + "\n"


def test_a_retrain_with_a_source_is_measured_and_gated_per_source(chain_copy, tmp_path):
    outputs, settings = chain_copy
    source = _write(tmp_path, "parcels.tsv", _new_messages(60))
    before = {kind: next((outputs / kind).iterdir()).name for kind in ("corpus", "training")}
    extra = {**settings, "DownloadCorpus": {**settings["DownloadCorpus"],
                                            "extra_sources": source}}
    # An impossible floor for the source: refused, and the reason names the source.
    strict = {**extra, "PromoteVersion": {"source_min_mcc": '{"parcels": 1.01}'}}
    with luigi_config(strict):
        assert not luigi.build([tasks.PromoteVersion()], local_scheduler=True,
                               log_level="CRITICAL")
        with pytest.raises(promotion.PromotionRefused, match=r"extra source 'parcels'.*"
                                                         r"source_min_mcc"):
            tasks.PromoteVersion().run()
    base = outputs / "serving" / "spam_ham"
    assert model_base.live_version(base) == 1
    with luigi_config(extra):
        assert luigi.build([tasks.PromoteVersion()], local_scheduler=True, log_level="WARNING")
        training = tasks.TrainRNN().output_folder()
        corpus_folder = tasks.DownloadCorpus().output_folder()
    assert corpus_folder.name != before["corpus"] and training.name != before["training"]
    table = corpus.read_corpus_table(corpus_folder / "messages.csv")
    assert (table.source == "parcels").sum() == 60
    result = json.loads((training / "metrics.json").read_text())
    old = json.loads((outputs / "training" / before["training"] / "metrics.json").read_text())
    assert result["weights_sha256"] != old["weights_sha256"]
    assert set(result["test_by_source"]) == {corpus.CORPUS_SOURCE, "parcels"}
    assert result["test_by_source"]["parcels"]["messages"] == 12
    assert result["test"]["messages"] == sum(
        m["messages"] for m in result["test_by_source"].values())
    assert "test: parcels (12)" in (training / "report" / "report.html").read_text()
    assert model_base.live_version(base) == 2
    provenance = model_base.version_provenance(base, 2)
    assert [s["name"] for s in provenance["sources"]] == [corpus.CORPUS_SOURCE, "parcels"]
    assert provenance["sources"][1]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    audit = model_base.read_audit(base)
    refused, published = audit[-2], audit[-1]
    assert refused["event"] == "refused" and "parcels" in refused["extra_sources"]
    assert published["extra_sources"]["parcels"]["live_metrics"]["threshold"] > 0
