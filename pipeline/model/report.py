"""A training report people can look at: learning curves, confusion matrix, ROC and
precision-recall curves with the chosen threshold marked, and the misclassified test
messages, as PNG images inside one HTML page; then the same curves and mistakes for each
evaluation set (``[TrainRNN] evaluation_sets``)."""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in cron
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.model import metrics  # noqa: E402
from pipeline.data.spreadsheet_cells import write_spreadsheet_csv  # noqa: E402


@dataclass(frozen=True)
class ScoredSet:
    """Labelled messages and the model's spam probabilities for them."""

    name: str
    texts: list[str]
    labels: np.ndarray
    probabilities: np.ndarray


def write_report(folder: Path, history: list[dict], result: dict,
                 scored: list[ScoredSet]) -> Path:
    """Write ``report.html`` with its images and ``misclassified.csv`` into ``folder``.

    ``scored`` holds the test split first, then each evaluation set of
    ``result["evaluation_sets"]``; each of those gets ``roc_pr_<name>.png`` and
    ``misclassified_<name>.csv`` and a section of the page.
    """
    folder.mkdir(parents=True, exist_ok=True)
    threshold = result["threshold"]
    test, *held_out = scored
    _learning_curves(history, folder / "learning_curves.png")
    _confusion_matrix(result["test"]["confusion_matrix"], folder / "confusion_matrix.png")
    _roc_and_pr(test.labels, test.probabilities, result["test"], folder / "roc_pr.png")
    wrong = _misclassified(test.texts, test.labels, test.probabilities, threshold)
    write_spreadsheet_csv(wrong, folder / "misclassified.csv", ("text",))
    sections = []
    for scored_set in held_out:
        stem = re.sub(r"[^\w.-]", "_", scored_set.name)
        at = result["evaluation_sets"][scored_set.name]
        _roc_and_pr(scored_set.labels, scored_set.probabilities, at,
                    folder / f"roc_pr_{stem}.png")
        set_wrong = _misclassified(scored_set.texts, scored_set.labels,
                                   scored_set.probabilities, threshold)
        write_spreadsheet_csv(set_wrong, folder / f"misclassified_{stem}.csv", ("text",))
        sections.append(_evaluation_section(scored_set.name, stem, at, set_wrong))
    page = folder / "report.html"
    page.write_text(_page(result, wrong, "".join(sections)), encoding="utf-8")
    return page


def _learning_curves(history: list[dict], path: Path) -> None:
    """Loss and validation metrics per epoch."""
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(10, 3.5))
    epochs = [h["epoch"] for h in history]
    # with the n-gram member, also the served output's (what early
    # stopping watches)
    for key in [k for k in ("loss", "val_loss", "val_served_loss") if k in history[0]]:
        loss_axis.plot(epochs, [h.get(key, np.nan) for h in history], marker="o", label=key)
    for key in ("val_accuracy", "val_auc", "val_spam_caught"):
        metric_axis.plot(epochs, [h.get(key, np.nan) for h in history], marker="o", label=key)
    loss_axis.set(title="Loss", xlabel="epoch")
    metric_axis.set(title="Validation metrics", xlabel="epoch")
    for axis in (loss_axis, metric_axis):
        axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _confusion_matrix(c: dict, path: Path) -> None:
    cells = np.array([[c["ham_as_ham"], c["ham_as_spam"]], [c["spam_as_ham"], c["spam_as_spam"]]])
    figure, axis = plt.subplots(figsize=(3.8, 3.4))
    axis.imshow(cells, cmap="Blues")
    for (row, column), value in np.ndenumerate(cells):
        axis.text(column, row, str(value), ha="center", va="center",
                  color="white" if value > cells.max() / 2 else "black", fontsize=14)
    axis.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["ham", "spam"],
             yticklabels=["ham", "spam"], xlabel="predicted", ylabel="true",
             title="Test confusion matrix")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _roc_and_pr(labels: np.ndarray, probabilities: np.ndarray, at: dict, path: Path) -> None:
    """ROC and PR curves, with the operating point ``at`` (test metrics at the threshold)."""
    fpr, tpr, _ = metrics.roc_curve(labels, probabilities)
    precision, recall, _ = metrics.precision_recall_curve(labels, probabilities)
    threshold = at["threshold"]
    c = at["confusion_matrix"]
    point_precision = c["spam_as_spam"] / max(c["spam_as_spam"] + c["ham_as_spam"], 1)
    figure, (roc_axis, pr_axis) = plt.subplots(1, 2, figsize=(10, 4))
    roc_axis.plot(fpr, tpr)
    roc_axis.plot([at["ham_blocked"]], [at["spam_caught"]], "ro",
                  label=f"threshold {threshold:.3f}")
    roc_axis.set(title=f"ROC (AUC {at['roc_auc']:.4f})", xlabel="ham blocked",
                 ylabel="spam caught", xscale="symlog", xlim=(0, 1))
    roc_axis.set_xscale("symlog", linthresh=0.01)
    roc_axis.legend(loc="lower right")
    pr_axis.plot(recall, precision)
    pr_axis.plot([at["spam_caught"]], [point_precision], "ro", label=f"threshold {threshold:.3f}")
    pr_axis.set(title=f"Precision-recall (AP {at['pr_auc']:.4f})", xlabel="spam caught",
                ylabel="precision")
    pr_axis.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _misclassified(texts: list[str], labels: np.ndarray, probabilities: np.ndarray,
                   threshold: float) -> pd.DataFrame:
    predicted = probabilities >= threshold
    wrong = np.flatnonzero(predicted != labels)
    frame = pd.DataFrame({
        "true_label": np.where(labels[wrong], "spam", "ham"),
        "spam_probability": probabilities[wrong],
        "text": [texts[i] for i in wrong],
    })
    return frame.sort_values("spam_probability", ascending=False)


_HEADLINE = ("accuracy", "mcc", "spam_caught", "ham_blocked", "roc_auc", "pr_auc")


def _mistake_rows(wrong: pd.DataFrame) -> str:
    return "".join(
        f"<tr><td>{r.true_label}</td><td>{r.spam_probability:.4f}</td>"
        f"<td>{html.escape(r.text)}</td></tr>" for r in wrong.itertuples())


def _evaluation_section(name: str, stem: str, at: dict, wrong: pd.DataFrame) -> str:
    figures = "".join(f"<td>{at[k]:.4f}</td>" for k in _HEADLINE)
    return f"""<h2>Evaluation set {html.escape(name)}</h2>
<p><code>{html.escape(at['location'])}</code>: {at['messages']} messages, {at['spam']} spam
(sha256 <code>{at['sha256'][:16]}</code>), scored at the same threshold.</p>
<table><tr><th>accuracy</th><th>MCC</th><th>spam caught</th><th>ham blocked</th>
<th>ROC AUC</th><th>PR AUC</th></tr><tr>{figures}</tr></table>
<img src="roc_pr_{stem}.png" alt="ROC and PR curves of {html.escape(name)}">
<h3>Misclassified messages of {html.escape(name)} ({len(wrong)})</h3>
<table><tr><th>true</th><th>spam probability</th><th>text</th></tr>{_mistake_rows(wrong)}</table>
"""


def _set_by(result: dict) -> str:
    """Which source's validation part set the threshold, and each source's figures there
    (the threshold holds on every source with enough ham)."""
    rule = result["threshold_rule"]
    by_source = rule.get("validation_by_source", {})
    if len(by_source) < 2:
        return ""
    figures = ", ".join(
        f"{html.escape(source)}: "
        + (f"{at['ham_blocked']:.2%} of {at['validation_ham']} ham blocked"
           if at["validation_ham"] else "no validation ham")
        + ("" if at["own_threshold"] is not None else ", too few to count")
        for source, at in by_source.items())
    return (f" on every source with at least {rule['min_source_ham']} validation ham, set "
            f"by {html.escape(rule['set_by'])} ({figures})")


def _page(result: dict, wrong: pd.DataFrame, evaluation_sections: str = "") -> str:
    rows = "".join(
        f"<tr><td>{split}</td>" + "".join(
            f"<td>{result[split][k]:.4f}</td>" for k in _HEADLINE) + "</tr>"
        for split in ("validation", "test"))
    by_source = result.get("test_by_source", {})
    if len(by_source) > 1:  # extra sources: each one's test part, at the same threshold
        rows += "".join(
            f"<tr><td>test: {html.escape(source)} ({at['messages']})</td>" + "".join(
                f"<td>{at[k]:.4f}</td>" for k in _HEADLINE) + "</tr>"
            for source, at in by_source.items())
    mistakes = _mistake_rows(wrong)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Spam RNN training report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}
td,th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}}</style></head>
<body><h1>Spam RNN training report</h1>
<p>Threshold {result['threshold']:.4f}, chosen on validation for at most
{result['threshold_rule']['max_ham_blocked_on_validation']:.2%} ham blocked{_set_by(result)};
{result['epochs_trained']} epochs; weights sha256 <code>{result['weights_sha256'][:16]}</code>.</p>
<table><tr><th>split</th><th>accuracy</th><th>MCC</th><th>spam caught</th>
<th>ham blocked</th><th>ROC AUC</th><th>PR AUC</th></tr>{rows}</table>
<h2>Learning curves</h2><img src="learning_curves.png" alt="learning curves">
<h2>Test confusion matrix</h2><img src="confusion_matrix.png" alt="confusion matrix">
<h2>ROC and precision-recall (test)</h2><img src="roc_pr.png" alt="ROC and PR curves">
<h2>Misclassified test messages ({len(wrong)})</h2>
<table><tr><th>true</th><th>spam probability</th><th>text</th></tr>{mistakes}</table>
{evaluation_sections}</body></html>
"""
