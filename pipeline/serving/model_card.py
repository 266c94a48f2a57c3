"""The model card every export carries (``assets.extra/model_card.md`` and ``.json``):
what the model is for, what it learned from, how well it did on the test split and on
each evaluation set (with 95% intervals), the threshold and the rule that chose it, the
baseline it was compared with, and its known limits. Built only from the figures the
pipeline measured (``metrics.json``, the corpus statistics, the export's provenance);
docs/model-card.md explains how to read it. No TensorFlow here.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from pipeline.data import corpus
from pipeline.model import metrics as measures
from pipeline.serving.model_base import MODEL_CARD_FILE, MODEL_CARD_JSON_FILE

INTENDED_USE = [
    "Flag unsolicited commercial SMS (spam) among personal text messages (ham), in English, "
    "in batches (BatchScore) or online (TensorFlow Serving).",
    "Decide with the threshold inside the model (the `label` output), or rank by "
    "`spam_probability` for a review queue.",
]
OUT_OF_SCOPE = [
    "Messages in other languages, e-mail, chat or social-media posts: the model learned "
    "from English SMS only.",
    "Deciding alone about messages whose loss would harm someone (alerts, codes, medical or "
    "financial notices): blocked ham is the costly error; route doubtful messages to review.",
    "Judging people: the scores describe message text, not senders.",
]
RETRAINING = [
    "Label messages from your own traffic (the review queue's files under `outputs/review/` "
    "are a good start: fill in their `label` column with `ham` or `spam`), or write "
    "`label<TAB>text` lines.",
    "List the file in `[DownloadCorpus] extra_sources` in luigi.cfg (or pass "
    "`--DownloadCorpus-extra-sources`), then run the pipeline: the corpus, vocabulary and "
    "model are rebuilt with those messages, split 70/10/20 like the corpus.",
    "The promotion gate compares the new model with the live one on the same test messages "
    "and publishes it only when it does not regress; `spam-ham-versions show live` then "
    "prints the new model's card.",
]
FIGURES = ("accuracy", "spam_caught", "ham_blocked", "roc_auc")


def build(provenance: dict, corpus_stats: dict, model_name: str) -> dict:
    """The card as a JSON-ready dict, from an export's ``provenance`` (its ``metrics`` are
    the training run's ``metrics.json``) and DownloadCorpus's ``stats.json``."""
    result = provenance["metrics"]
    evaluation_sets = {name: _with_intervals(figures)
                       for name, figures in result.get("evaluation_sets", {}).items()}
    return {
        "model": {
            "name": model_name,
            "export_id": provenance.get("export_id"),
            "exported_at": provenance.get("exported_at"),
            "code_version": provenance.get("code_version"),
            "training_run": provenance.get("training_run"),
            "weights_sha256": result.get("weights_sha256"),
            "epochs_trained": result.get("epochs_trained"),
            "training_parameters": provenance.get("training_parameters", {}),
            "model_settings": provenance.get("model_settings", {}),
        },
        "intended_use": INTENDED_USE,
        "out_of_scope_use": OUT_OF_SCOPE,
        "training_data": _training_data(provenance, corpus_stats),
        "threshold": _threshold(result),
        "metrics": {
            "test": _with_intervals(result["test"]),
            "test_by_source": {name: _with_intervals(figures)
                               for name, figures in result.get("test_by_source", {}).items()},
            "evaluation_sets": evaluation_sets,
        },
        "baseline": result.get("baseline"),
        "known_limits": known_limits(result["test"], evaluation_sets),
        "retraining": RETRAINING,
    }


def _with_intervals(figures: dict) -> dict:
    return {**figures, "intervals_95": {name: list(bounds) for name, bounds
                                        in measures.intervals(figures).items()}}


def _training_data(provenance: dict, corpus_stats: dict) -> dict:
    checksums = {source.get("name"): source for source in provenance.get("sources", [])}
    sources = []
    for source in corpus_stats.get("sources", []):
        known = checksums.get(source.get("name"), {})
        sources.append({"name": source.get("name"),
                        "location": source.get("location", known.get("location")),
                        "sha256": source.get("sha256", known.get("sha256")),
                        "messages": source.get("messages"), "labels": source.get("labels"),
                        "splits": source.get("splits"),
                        "repeated_texts_dropped": source.get("repeated_texts_dropped")})
    first = sources[0]["sha256"] if sources else provenance.get("corpus_sha256")
    return {
        "sources": sources,
        "messages": corpus_stats.get("messages"),
        "splits": corpus_stats.get("splits"),
        "split": ("/".join(f"{share:.0%}".rstrip("%") for share in corpus.SPLIT_SHARES)
                  + " train/validation/test, stratified by label, each source on its own"),
        "split_seed": corpus_stats.get("split_seed"),
        "corpus_terms": (corpus.UCI_TERMS if first == corpus.UCI_SHA256 else
                         "Not the pinned UCI corpus: state its terms yourself."),
    }


def _threshold(result: dict) -> dict:
    rule = result.get("threshold_rule", {})
    limit = rule.get("max_ham_blocked_on_validation")
    return {
        "value": result["threshold"],
        "rule": (f"the lowest threshold that blocks at most {_share(limit)} of the validation "
                 f"ham of the corpus and of each extra source with at least "
                 f"{rule.get('min_source_ham')} validation ham, not below "
                 f"{rule.get('min_threshold')}" if limit is not None else "not recorded"),
        "set_by": rule.get("set_by"),
        "settings": {key: rule.get(key) for key in
                     ("max_ham_blocked_on_validation", "min_threshold", "min_source_ham")},
    }


def known_limits(test: dict, evaluation_sets: dict[str, dict]) -> list[str]:
    """What the measured figures say the model is bad at: each evaluation set against the
    test split, in points of spam caught, ham blocked and ROC AUC."""
    limits = []
    for name, figures in evaluation_sets.items():
        limits.append(
            f"On {name} ({figures.get('messages')} messages from another collection), spam "
            f"caught is {_points(figures['spam_caught'] - test['spam_caught'])} and ham "
            f"blocked {_points(figures['ham_blocked'] - test['ham_blocked'])} against the "
            f"test split; ROC AUC {_points(figures['roc_auc'] - test['roc_auc'])}.")
    if not evaluation_sets:
        limits.append(
            "This run measured no messages from other collections ([TrainRNN] "
            "evaluation_sets is empty), so it cannot say how much worse messages from other "
            "times and places score; expect them to score worse, and configure an "
            "evaluation set to measure it.")
    limits.append(
        "The corpus holds English SMS collected around 2010 (mostly UK and Singapore): "
        "newer spam tactics, other countries' conventions and other languages are under-"
        "represented. Labelled messages from your own traffic fix this best.")
    return limits


# --------------------------------------------------------------------------- writing


def write(folder: Path, card: dict) -> None:
    """Write ``model_card.json`` and ``model_card.md`` into ``folder/assets.extra``."""
    (folder / MODEL_CARD_JSON_FILE).parent.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_CARD_JSON_FILE).write_text(json.dumps(card, indent=2, sort_keys=True,
                                               ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / MODEL_CARD_FILE).write_text(markdown(card), encoding="utf-8")


def markdown(card: dict) -> str:
    """The card as a Markdown page."""
    model, data, threshold = card["model"], card["training_data"], card["threshold"]
    lines = [f"# Model card: {model['name']} ({model['export_id']})", "",
             f"Exported {model['exported_at']} from training run `{model['training_run']}` "
             f"(code {model['code_version']}, {model['epochs_trained']} epochs, weights "
             f"sha256 {str(model['weights_sha256'])[:16]}...).", "",
             "## Intended use", "", *_bullets(card["intended_use"]), "",
             "## Out-of-scope use", "", *_bullets(card["out_of_scope_use"]), "",
             "## Training data", "",
             f"{data['messages']} messages, split {data['split']} (seed {data['split_seed']}).",
             "", "| source | sha256 | messages | ham | spam | train | validation | test |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for source in data["sources"]:
        splits, labels = source.get("splits") or {}, source.get("labels") or {}
        lines.append(f"| {source['name']} | `{str(source['sha256'])[:16]}...` | "
                     f"{source['messages']} | {labels.get('ham')} | {labels.get('spam')} | "
                     + " | ".join(str(sum((splits.get(s) or {}).values()))
                                  for s in corpus.SPLITS) + " |")
    lines += ["", f"Corpus terms: {data['corpus_terms']}", "",
              "## Threshold", "",
              f"Messages scoring {threshold['value']:.4f} or more are labelled spam: "
              f"{threshold['rule']} (set by {threshold['set_by']}).", "",
              "## Metrics", "",
              "95% intervals in brackets (Wilson for shares; Hanley-McNeil for ROC AUC).", "",
              "| messages | count | accuracy | spam caught | ham blocked | ROC AUC |",
              "| --- | ---: | ---: | ---: | ---: | ---: |",
              _metrics_row("test split", card["metrics"]["test"])]
    by_source = card["metrics"]["test_by_source"]
    if len(by_source) > 1:
        lines += [_metrics_row(f"test split: {name}", figures)
                  for name, figures in by_source.items()]
    lines += [_metrics_row(f"evaluation set: {name}", figures)
              for name, figures in card["metrics"]["evaluation_sets"].items()]
    lines += ["", "## Baseline", ""]
    baseline = card.get("baseline")
    if baseline:
        lines += [f"{baseline['model']}, its threshold ({baseline['threshold']:.4f}) chosen "
                  "by the same ham-blocked limit on the validation split:", "",
                  "| messages | count | accuracy | spam caught | ham blocked | ROC AUC |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        lines += [_metrics_row("test split" if name == "test" else f"evaluation set: {name}",
                               _with_intervals(figures))
                  for name, figures in baseline.items() if isinstance(figures, dict)]
    else:
        lines.append("No baseline was measured for this model (its training split lacked "
                     "one of the labels).")
    lines += ["", "At promotion, the gate also compares this model with the live version on "
              "the same test messages; its verdict is in the promotion's audit log.", "",
              "## Known limits", "", *_bullets(card["known_limits"]), "",
              "## Retraining with your own labelled messages", "",
              *[f"{number}. {step}" for number, step in enumerate(card["retraining"], 1)], ""]
    return "\n".join(lines)


def _metrics_row(name: str, figures: dict) -> str:
    intervals = figures.get("intervals_95", {})
    cells = [_figure(figures[key], intervals.get(key)) for key in FIGURES]
    return f"| {name} | {figures['messages']} | " + " | ".join(cells) + " |"


def _figure(value: float, bounds) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if not bounds or any(math.isnan(b) for b in bounds):
        return f"{value:.4f}"
    return f"{value:.4f} [{bounds[0]:.4f}, {bounds[1]:.4f}]"


def _share(value) -> str:
    return f"{value:.2%}" if isinstance(value, (int, float)) else str(value)


def _points(difference: float) -> str:
    if difference is None or math.isnan(difference):
        return "not measurable"
    points = difference * 100
    if round(points, 1) == 0:
        return "the same"
    return f"{abs(points):.1f} points {'higher' if points > 0 else 'lower'}"


def _bullets(items: list[str]) -> list[str]:
    return [f"- {item}" for item in items]
