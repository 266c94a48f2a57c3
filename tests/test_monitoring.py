import base64
import json
import math

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.monitoring import drift
from pipeline.monitoring.drift import DriftThresholds, Reference

THRESHOLDS = DriftThresholds(max_psi=0.25, max_oov_share=0.2, max_url_share=0.15,
                             max_spam_share=0.5, min_rows=50)


def reference_scores(rows=400, seed=0):
    """Mostly confident ham near 0, some spam near 1, like a trained model's test split."""
    rng = np.random.default_rng(seed)
    spam = rng.random(rows) < 0.15
    return np.where(spam, rng.uniform(0.9, 1.0, rows), rng.uniform(0.0, 0.05, rows))


@pytest.fixture
def reference():
    p = reference_scores()
    return Reference(histogram=drift.score_histogram(p), rows=p.size,
                     spam_share=float(np.mean(p >= 0.5)), mean_probability=float(p.mean()),
                     oov_share=0.03, url_share=0.02)


def summary_of(p, reference, oov_tokens=30, word_tokens=1000, url_messages=None,
               thresholds=THRESHOLDS):
    url_messages = round(0.02 * len(p)) if url_messages is None else url_messages
    return drift.day_summary(p, p >= 0.5, word_tokens, oov_tokens, url_messages,
                                  reference, thresholds)


def test_histogram_puts_edge_values_in_the_right_bins():
    counts = drift.score_histogram(np.array([0.0, 0.5, 0.99, 1.0, 0.0099]))
    assert len(counts) == len(drift.BIN_EDGES) - 1
    assert counts[0] == 2  # 0.0 and 0.0099 in [0, 0.01)
    assert counts[drift.BIN_EDGES.index(0.5)] == 1  # 0.5 opens [0.5, 0.65)
    assert counts[-1] == 2  # 0.99 and 1.0 in the closed last bin [0.99, 1.0]
    assert sum(counts) == 5


@pytest.mark.parametrize("bad", [np.nan, 1.5, -0.1])
def test_histogram_rejects_impossible_probabilities(bad):
    with pytest.raises(ValueError, match="1 of 3 probabilities"):
        drift.score_histogram(np.array([0.2, bad, 0.7]))


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shifted_one():
    same = [10, 20, 30, 40]
    assert drift.population_stability_index(same, [1, 2, 3, 4]) == pytest.approx(0, abs=1e-12)
    shifted = [40, 30, 20, 10]
    psi = drift.population_stability_index(same, shifted)
    assert psi > 0.25
    assert drift.population_stability_index(shifted, same) == pytest.approx(psi)
    slightly = [11, 20, 30, 39]
    assert 0 < drift.population_stability_index(same, slightly) < 0.01


def test_psi_stays_finite_when_a_bin_is_empty():
    psi = drift.population_stability_index([0, 50, 50], [50, 50, 0])
    assert math.isfinite(psi) and psi > 1


@pytest.mark.parametrize("reference_counts, day_counts, message", [
    ([1, 2, 3], [1, 2], "3 and 2 bins"), ([0, 0], [1, 2], "empty"), ([1, 2], [0, 0], "empty")])
def test_psi_rejects_histograms_it_cannot_compare(reference_counts, day_counts, message):
    with pytest.raises(ValueError, match=message):
        drift.population_stability_index(reference_counts, day_counts)


def test_a_day_like_the_reference_is_not_drift(reference):
    summary = summary_of(reference_scores(rows=300, seed=1), reference)
    assert summary["drift"] is False and summary["reasons"] == []
    assert summary["psi"] < 0.1
    assert summary["rows"] == 300
    assert summary["histogram"]["edges"] == list(drift.BIN_EDGES)
    assert sum(summary["histogram"]["counts"]) == 300
    assert summary["oov_share"] == pytest.approx(0.03)
    assert summary["url_share"] == pytest.approx(0.02)
    assert summary["reference"] == reference.as_dict()
    assert summary["thresholds"]["max_psi"] == 0.25
    json.dumps(summary)  # JSON-ready, no numpy scalars


def test_unknown_words_make_drift_with_a_reason_naming_the_setting(reference):
    summary = summary_of(reference_scores(rows=300, seed=1), reference, oov_tokens=400)
    assert summary["drift"] is True
    [reason] = summary["reasons"]
    assert reason.startswith("oov_share 0.4 is above max_oov_share 0.2 ")
    assert "[MonitorScores] max_oov_share" in reason and "0.03" in reason


def test_shifted_scores_and_links_make_drift(reference):
    p = np.random.default_rng(2).uniform(0.3, 0.7, 300)
    summary = summary_of(p, reference, url_messages=90)
    measures = [reason.split()[0] for reason in summary["reasons"]]
    assert measures == ["psi", "url_share"]
    assert "([MonitorScores] max_psi)" in summary["reasons"][0]


def test_too_few_rows_do_not_judge_psi_or_spam_share(reference):
    p = np.full(10, 0.97)  # all spam, all in one bin: far from the reference
    summary = summary_of(p, reference, url_messages=0)
    assert summary["psi"] > 0.25 and summary["spam_share"] == 1.0
    assert summary["drift"] is False and summary["distribution_judged"] is False
    judged = summary_of(p, reference, url_messages=0,
                        thresholds=DriftThresholds(0.25, 0.2, 0.15, 0.5, min_rows=10))
    assert [r.split()[0] for r in judged["reasons"]] == ["psi", "spam_share"]


def test_a_day_without_scores_is_an_error(reference):
    with pytest.raises(ValueError, match="no scored rows"):
        summary_of(np.array([]), reference)


def test_no_words_gives_zero_oov_share(reference):
    assert summary_of(reference_scores(rows=60), reference, 0, 0)["oov_share"] == 0.0


def test_reference_round_trips_and_names_missing_keys(reference):
    assert Reference.from_dict(json.loads(json.dumps(reference.as_dict()))) == reference
    data = reference.as_dict()
    del data["oov_share"], data["rows"]
    with pytest.raises(ValueError, match=r"\['rows', 'oov_share'\]"):
        Reference.from_dict(data)


def write_day(root, date, name, summary, model_version=3):
    (root / date).mkdir(parents=True, exist_ok=True)
    data = {**summary, "model_version": model_version}
    (root / date / f"{name}.json").write_text(json.dumps(data))


@pytest.fixture
def three_days(tmp_path, reference):
    calm = summary_of(reference_scores(rows=300, seed=1), reference)
    write_day(tmp_path, "2024-05-01", "inbox", calm)
    write_day(tmp_path, "2024-05-02", "inbox", calm, model_version=None)
    odd = summary_of(reference_scores(rows=300, seed=3), reference, oov_tokens=400)
    odd["reasons"].append("<script>alert(1)</script> & more")
    write_day(tmp_path, "2024-05-03", "inbox", odd, model_version=4)
    (tmp_path / "notadate").mkdir()
    (tmp_path / "notadate" / "inbox.json").write_text(json.dumps(calm))
    (tmp_path / "2024-05-03" / ".inbox.json.tmp-123-abc").write_text("{half a fi")
    (tmp_path / "2024-05-03" / ".hidden.json").write_text("{half a fi")
    return tmp_path


def test_read_days_finds_every_day_summary_and_skips_the_rest(three_days):
    frame = drift.read_days(three_days)
    assert list(frame.columns) == list(drift.DAY_COLUMNS)
    assert list(frame["date"]) == ["2024-05-01", "2024-05-02", "2024-05-03"]
    assert list(frame["drift"]) == [False, False, True]
    assert frame["reasons"].iloc[2].startswith("oov_share 0.4 is above max_oov_share")
    assert "; <script>" in frame["reasons"].iloc[2]
    assert frame["model_version"].iloc[2] == 4


def test_read_days_of_a_missing_folder_is_empty(tmp_path):
    frame = drift.read_days(tmp_path / "nothing")
    assert frame.empty and list(frame.columns) == list(drift.DAY_COLUMNS)


def test_report_shows_trends_and_every_day_newest_first(three_days):
    page = drift.write_report(three_days, THRESHOLDS)
    assert page == three_days / "report.html"
    text = page.read_text(encoding="utf-8")
    assert '<img src="data:image/png;base64,' in text
    encoded = text.split('data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(encoded).startswith(b"\x89PNG")
    rows = text.split("<tr")[2:]  # after the header row
    assert [row.split("<td>")[1].split("<")[0] for row in rows] == [
        "2024-05-03", "2024-05-02", "2024-05-01"]
    assert 'class="drift"' in rows[0] and "above max_oov_share 0.2" in rows[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in text
    assert "<script>" not in text
    assert [p.name for p in three_days.iterdir() if p.name.startswith(".")] == []


def test_report_marks_the_day_a_version_went_live_and_links_its_shadow_summary(three_days):
    releases = [drift.Release("2024-04-01", 2),  # before the days shown: not listed
                drift.Release("2024-05-02", 3, shadow_href="../serving/x.shadow/ab/shadow.json",
                              shadow_headline="4 newly blocked, 1 newly passed of 900"),
                drift.Release("2024-05-03", 4, event="rolled_back")]
    text = drift.write_report(three_days, THRESHOLDS, releases=releases).read_text("utf-8")
    rows = {row.split("<td>")[1].split("<")[0]: row for row in text.split("<tr")[2:]}
    assert ('version 3 (<a href="../serving/x.shadow/ab/shadow.json">shadow: 4 newly '
            'blocked, 1 newly passed of 900</a>)') in rows["2024-05-02"]
    assert "version 4 (rollback)" in rows["2024-05-03"]
    assert "version" not in rows["2024-05-01"].split("<td>")[-1] and "version 2" not in text


def test_report_keeps_only_the_last_days_and_works_with_one(three_days):
    text = drift.write_report(three_days, THRESHOLDS, days=1).read_text(encoding="utf-8")
    assert "2024-05-03" in text and "2024-05-01" not in text
    assert "data:image/png;base64," in text


def test_report_without_days_says_so(tmp_path):
    text = drift.write_report(tmp_path, THRESHOLDS).read_text(encoding="utf-8")
    assert "No monitored days yet" in text and "<img" not in text


def parse_metrics(path):
    return {sample.name: sample for family in text_string_to_metric_families(path.read_text())
            for sample in family.samples}


def test_prometheus_file_holds_the_day_with_labels(tmp_path, reference):
    summary = summary_of(reference_scores(rows=300, seed=3), reference, oov_tokens=400)
    path = tmp_path / "textfile" / "spam_ham_monitor_inbox.prom"
    path.parent.mkdir()
    drift.write_prometheus(path, summary, "2024-05-03", 'in"box\\', model_version=4)
    samples = parse_metrics(path)
    assert set(samples) == {f"spam_ham_monitor_{k}" for k in (
        "rows", "spam_share", "mean_probability", "oov_share", "url_share", "psi", "drift",
        "day_timestamp_seconds")}
    assert samples["spam_ham_monitor_rows"].value == 300
    assert samples["spam_ham_monitor_oov_share"].value == pytest.approx(0.4)
    assert samples["spam_ham_monitor_psi"].value == pytest.approx(summary["psi"])
    assert samples["spam_ham_monitor_drift"].value == 1
    assert samples["spam_ham_monitor_day_timestamp_seconds"].value == 1714694400
    assert samples["spam_ham_monitor_rows"].labels == {"input": 'in"box\\', "model_version": "4"}
    assert "# TYPE spam_ham_monitor_psi gauge" in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_prometheus_file_carries_the_last_promotions_flip_shares(tmp_path, reference):
    path = tmp_path / "inbox.prom"
    calm = summary_of(reference_scores(rows=300, seed=1), reference)
    drift.write_prometheus(path, calm, "2024-05-01", "inbox", 5, promotion={
        "version": 5, "shadow_messages": 900, "newly_blocked_share": 0.004,
        "newly_passed_share": 0.01})
    samples = parse_metrics(path)
    blocked = samples["spam_ham_promotion_newly_blocked_share"]
    assert blocked.value == pytest.approx(0.004)
    assert blocked.labels == {"input": "inbox", "version": "5"}
    assert samples["spam_ham_promotion_newly_passed_share"].value == pytest.approx(0.01)
    assert samples["spam_ham_promotion_shadow_messages"].value == 900


def test_prometheus_file_without_model_version_and_rewritten(tmp_path, reference):
    path = tmp_path / "inbox.prom"
    calm = summary_of(reference_scores(rows=300, seed=1), reference)
    drift.write_prometheus(path, {**calm, "drift": True}, "2024-05-01", "inbox", None)
    drift.write_prometheus(path, calm, "2024-05-02", "inbox", None)
    samples = parse_metrics(path)
    assert samples["spam_ham_monitor_drift"].value == 0
    assert samples["spam_ham_monitor_drift"].labels == {"input": "inbox"}
    assert samples["spam_ham_monitor_day_timestamp_seconds"].value == 1714608000
    assert [p.name for p in tmp_path.iterdir()] == ["inbox.prom"]


def test_prometheus_file_must_be_one_the_collector_reads(tmp_path, reference):
    calm = summary_of(reference_scores(rows=300, seed=1), reference)
    with pytest.raises(ValueError, match=r"\.prom"):
        drift.write_prometheus(tmp_path / "inbox.txt", calm, "2024-05-01", "inbox", 1)
