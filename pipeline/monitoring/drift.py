"""Drift monitoring of a day's batch scores: is today's traffic still like what the live
model was tested on? The day's score histogram is compared with the test split's by the
population stability index, and the shares of spam, unknown words and links with their
test-split values. Results go to a JSON per day and input (written by ``MonitorScores``),
an HTML trend page and a Prometheus textfile for alerting.
"""
from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import asdict, dataclass, fields
from datetime import date as Date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable

import matplotlib

matplotlib.use("Agg")  # no display on servers and in cron
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.atomic_output import atomic_file  # noqa: E402

BIN_EDGES: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9,
                                0.95, 0.98, 0.99, 1.0)
"""Fixed probability bins: a spam model's scores pile up near 0 and 1, so the bins are finer
there. Changing them makes every stored reference incomparable (PSI then raises)."""

DAY_COLUMNS = ("date", "name", "rows", "spam_share", "mean_probability", "oov_share",
               "url_share", "psi", "drift", "reasons", "model_version")


def score_histogram(probabilities: np.ndarray) -> list[int]:
    """Counts per ``BIN_EDGES`` bin; bins are [a, b), the last one [0.99, 1.0] closed.

    A probability outside [0, 1] or NaN means the scorer is broken, not that traffic drifted,
    so it raises instead of being dropped silently.
    """
    p = np.asarray(probabilities, dtype=float)
    bad = int(np.count_nonzero(np.isnan(p) | (p < 0) | (p > 1)))
    if bad:
        raise ValueError(f"{bad} of {p.size} probabilities are NaN or outside [0, 1]; "
                         "check the scoring output")
    counts, _ = np.histogram(p, bins=BIN_EDGES)
    return [int(c) for c in counts]


def population_stability_index(reference_counts: list[int], day_counts: list[int],
                               epsilon: float = 1e-4) -> float:
    """PSI = sum((d - r) * ln(d / r)) over the bins' shares, each floored at ``epsilon`` so
    that a bin empty on one side gives a large but finite term instead of infinity.

    Common reading: below 0.1 stable, 0.1-0.25 a shift worth a look, above 0.25 a real change.
    """
    if len(reference_counts) != len(day_counts):
        raise ValueError(f"histograms have {len(reference_counts)} and {len(day_counts)} bins; "
                         "both must use BIN_EDGES (rebuild the reference if the bins changed)")
    r, d = np.asarray(reference_counts, float), np.asarray(day_counts, float)
    if r.sum() <= 0 or d.sum() <= 0:
        raise ValueError(f"a histogram is empty (totals {r.sum():g} and {d.sum():g}); "
                         "PSI needs counts on both sides")
    r, d = np.maximum(r / r.sum(), epsilon), np.maximum(d / d.sum(), epsilon)
    return float(np.sum((d - r) * np.log(d / r)))


@dataclass(frozen=True)
class DriftThresholds:
    """Limits above which a day counts as drift; read from ``[MonitorScores]`` in luigi.cfg."""

    max_psi: float
    max_oov_share: float
    max_url_share: float
    max_spam_share: float
    min_rows: int  # below this, psi and spam_share are reported but not judged: too few rows


@dataclass(frozen=True)
class Reference:
    """What the live model saw at training time: its test split's scores and text statistics."""

    histogram: list[int]
    rows: int
    spam_share: float
    mean_probability: float
    oov_share: float
    url_share: float

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Reference:
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise ValueError(f"monitoring reference lacks {missing}; it must hold the live "
                             "model's test split statistics (rebuild it with that model)")
        return cls(histogram=[int(c) for c in data["histogram"]], rows=int(data["rows"]),
                   **{k: float(data[k]) for k in ("spam_share", "mean_probability",
                                                  "oov_share", "url_share")})


def summarise_day(chunks: Iterable[pd.DataFrame], words: list[str], reference: Reference,
                  thresholds: DriftThresholds,
                  on_rows: Callable[[int], None] | None = None) -> dict:
    """:func:`day_summary` of a day's scored chunks (``batch_files.read_scores``), read
    chunk by chunk: its probabilities and labels, and its messages' word tokens counted
    against the export's vocabulary ``words``. ``on_rows`` gets the rows read so far."""
    from pipeline.data import text  # TensorFlow ops: imported when a day is summarised

    lookup = text.make_lookup(words)
    probabilities, spam = [], []
    counts = {"messages": 0, "word_tokens": 0, "oov_tokens": 0, "url_messages": 0}
    for chunk in chunks:
        probabilities.append(chunk["spam_probability"].to_numpy(np.float64))
        spam.append((chunk["label"] == "spam").to_numpy())
        for key, value in text.token_statistics(chunk["text"].tolist(), lookup).items():
            counts[key] += value
        if on_rows:
            on_rows(counts["messages"])
    return day_summary(np.concatenate(probabilities) if probabilities else np.empty(0),
                       np.concatenate(spam) if spam else np.empty(0, bool),
                       counts["word_tokens"], counts["oov_tokens"], counts["url_messages"],
                       reference, thresholds)


def day_summary(probabilities: np.ndarray, spam_labels: np.ndarray, word_tokens: int,
                oov_tokens: int, url_messages: int, reference: Reference,
                thresholds: DriftThresholds) -> dict:
    """The day's figures next to the reference, as a JSON-ready dict with the verdict.

    A day without scores raises: an empty batch is a broken upstream, not "no drift".
    """
    p = np.asarray(probabilities, dtype=float)
    labels = np.asarray(spam_labels).astype(bool)
    if p.size == 0:
        raise ValueError("no scored rows for this day; check that the batch scoring ran on "
                         "a non-empty input")
    if labels.shape != p.shape:
        raise ValueError(f"{p.size} probabilities but {labels.size} spam labels")
    counts = score_histogram(p)
    summary = {
        "rows": int(p.size),
        "spam_share": float(labels.mean()),
        "mean_probability": float(p.mean()),
        "histogram": {"edges": list(BIN_EDGES), "counts": counts},
        "oov_share": float(oov_tokens / word_tokens) if word_tokens else 0.0,
        "url_share": float(url_messages / p.size),
        "psi": population_stability_index(reference.histogram, counts),
        "distribution_judged": p.size >= thresholds.min_rows,
        "thresholds": asdict(thresholds),
        "reference": reference.as_dict(),
    }
    summary["reasons"] = drift_reasons(summary, thresholds)
    summary["drift"] = bool(summary["reasons"])
    return summary


def drift_reasons(summary: dict, thresholds: DriftThresholds) -> list[str]:
    """One sentence per measure above its threshold, naming the value, the limit, the
    luigi.cfg setting to change and the test split's value, so whoever is paged knows
    where to look. psi and spam_share are judged only from ``min_rows`` rows on."""
    ref = summary["reference"]
    judged = summary["rows"] >= thresholds.min_rows
    checks = [
        ("psi", thresholds.max_psi, judged, "the scores are distributed unlike the live "
         f"model's test split (mean probability {summary['mean_probability']:.3g}, "
         f"test split {ref['mean_probability']:.3g})"),
        ("spam_share", thresholds.max_spam_share, judged,
         f"far more messages are labelled spam than in the test split ({ref['spam_share']:.3g})"),
        ("oov_share", thresholds.max_oov_share, True, "the messages use words the model's "
         f"vocabulary does not know (test split {ref['oov_share']:.3g})"),
        ("url_share", thresholds.max_url_share, True,
         f"more messages carry links than in the test split ({ref['url_share']:.3g})"),
    ]
    return [f"{measure} {summary[measure]:.3g} is above max_{measure} {limit:.3g} "
            f"([MonitorScores] max_{measure}): {why}"
            for measure, limit, judge, why in checks if judge and summary[measure] > limit]


def read_days(root: Path) -> pd.DataFrame:
    """One row per ``root/<YYYY-MM-DD>/<name>.json`` day summary, sorted by date then name.

    Other folders and hidden files (the temporaries of atomic writes) are skipped.
    """
    root, records = Path(root), []
    folders = sorted(root.iterdir()) if root.is_dir() else []
    for folder in folders:
        if not (folder.is_dir() and is_iso_date(folder.name)):
            continue
        for path in sorted(folder.glob("*.json")):
            if path.name.startswith("."):
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path} is not valid JSON ({error}); "
                                 "delete it to rebuild it") from None
            records.append({**{k: data.get(k) for k in DAY_COLUMNS},
                            "date": folder.name, "name": path.stem,
                            "reasons": "; ".join(data.get("reasons") or [])})
    frame = pd.DataFrame.from_records(records, columns=list(DAY_COLUMNS))
    return frame.sort_values(["date", "name"], ignore_index=True)


def is_iso_date(text: str) -> bool:
    """Whether ``text`` names a day folder: a real date written YYYY-MM-DD."""
    try:
        return Date.fromisoformat(text).isoformat() == text  # YYYY-MM-DD only, not 20240501
    except ValueError:
        return False


@dataclass(frozen=True)
class Release:
    """A version that went live (the audit log's promotions and rollbacks), for the report:
    its day, and the promotion's shadow summary (link relative to the report) if any."""

    date: str
    version: int
    event: str = "promoted"
    shadow_href: str | None = None
    shadow_headline: str = ""


def write_report(root: Path, thresholds: DriftThresholds, days: int = 30,
                 releases: Iterable[Release] = ()) -> Path:
    """Write ``root/report.html`` (one self-contained file, the figure inlined) with the trends
    of the last ``days`` monitored dates and a table of them, newest first; each version
    that went live in that span is marked on the figure and listed with a link to its
    shadow summary."""
    frame = read_days(root)
    recent = sorted(frame["date"].unique())[-days:] if days > 0 else []
    frame = frame[frame["date"].isin(recent)]
    shown = [r for r in releases if recent and recent[0] <= r.date <= recent[-1]]
    if frame.empty:
        body = f"<p>No monitored days yet under <code>{html.escape(str(root))}</code>.</p>"
    else:
        image = _trend_png(frame, thresholds, shown)
        newest = frame.sort_values(["date", "name"], ascending=[False, True])
        went_live = {}
        for release in shown:
            went_live.setdefault(release.date, []).append(_release_cell(release))
        listed = "; ".join(f"{date}: {', '.join(cells)}" for date, cells in went_live.items())
        rows = "".join(_table_row(r, went_live.pop(r.date, []))  # on a date's first row
                       for r in newest.itertuples())
        body = f"""<img src="data:image/png;base64,{image}" alt="monitoring trends">
<p>Went live: {listed or "no version in these days"}.</p>
<table><tr><th>date</th><th>input</th><th>model version</th><th>rows</th><th>spam share</th>
<th>mean probability</th><th>OOV share</th><th>URL share</th><th>PSI</th><th>drift</th>
<th>reasons</th><th>went live</th></tr>{rows}</table>"""
    page = Path(root) / "report.html"
    with atomic_file(page, encoding="utf-8") as handle:
        handle.write(f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Spam scoring monitor</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
td,th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}}
.drift{{background:#fdd}}</style></head>
<body><h1>Spam scoring monitor</h1>
<p>Thresholds ({html.escape(_settings(thresholds))}) are set in <code>[MonitorScores]</code>
of luigi.cfg; PSI and spam share are judged only on days with at least min_rows rows.</p>
{body}</body></html>
""")
    return page


def _settings(thresholds: DriftThresholds) -> str:
    return ", ".join(f"{k} = {v:g}" for k, v in asdict(thresholds).items())


def _release_cell(release: Release) -> str:
    """"version N" and, after a promotion with shadow scoring, a link to its summary."""
    text = html.escape(f"version {release.version}"
                       + (" (rollback)" if release.event == "rolled_back" else ""))
    if release.shadow_href:
        text += (f' (<a href="{html.escape(release.shadow_href)}">shadow: '
                 f"{html.escape(release.shadow_headline)}</a>)")
    return text


def _trend_png(frame: pd.DataFrame, thresholds: DriftThresholds,
               releases: list[Release] = ()) -> str:
    """Rows, spam share, OOV share and PSI over date, one line per input, as base64 PNG."""
    frame = frame.assign(when=pd.to_datetime(frame["date"]), drift=frame["drift"].astype(bool))
    panels = [("rows", "rows", "min_rows"), ("spam_share", "spam share", "max_spam_share"),
              ("oov_share", "OOV share", "max_oov_share"), ("psi", "PSI", "max_psi")]
    figure, axes = plt.subplots(len(panels), 1, figsize=(10, 10), sharex=True)
    for axis, (column, title, setting) in zip(axes, panels):
        for name, group in frame.groupby("name"):
            axis.plot(group["when"], group[column], marker="o", label=name)
        drifted = frame[frame["drift"]]
        axis.plot(drifted["when"], drifted[column], "o", color="red", markersize=9,
                  fillstyle="none", zorder=3, label="drift")
        limit = getattr(thresholds, setting)
        axis.axhline(limit, linestyle="--", color="grey", label=f"{setting} {limit:g}")
        for release in releases:  # the day a version went live
            axis.axvline(pd.Timestamp(release.date), linestyle=":", color="green")
            if column == panels[0][0]:
                axis.annotate(f"v{release.version}", (pd.Timestamp(release.date), 1),
                              xycoords=("data", "axes fraction"), color="green",
                              fontsize="small", va="top")
        axis.set(title=title)
        axis.legend(fontsize="small", loc="best")
    axes[-1].set_yscale("symlog", linthresh=0.1)  # a real shift can give a PSI of 10 or more
    axes[-1].set_ylim(0, 1.5 * max(frame["psi"].max(), thresholds.max_psi))  # no point on the edge
    first, last = frame["when"].min(), frame["when"].max()
    axes[-1].set_xlim(first - timedelta(days=1), last + timedelta(days=1))  # one day: a point
    axes[-1].xaxis.set_major_locator(mdates.DayLocator(interval=max(1, (last - first).days // 8)))
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _table_row(r, went_live: list[str] = ()) -> str:
    version = "" if r.model_version is None or pd.isna(r.model_version) else int(r.model_version)
    cells = [r.date, r.name, version, int(r.rows), f"{r.spam_share:.3f}",
             f"{r.mean_probability:.3f}", f"{r.oov_share:.3f}", f"{r.url_share:.3f}",
             f"{r.psi:.3f}", "yes" if r.drift else "no", r.reasons]
    cls = ' class="drift"' if r.drift else ""
    return (f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
            + f"<td>{'<br>'.join(went_live)}</td></tr>")  # built escaped by _release_cell


_METRICS = {  # summary key -> help text; each becomes gauge spam_ham_monitor_<key>
    "rows": "Scored messages of the day.",
    "spam_share": "Share of the day's messages labelled spam.",
    "mean_probability": "Mean spam probability of the day.",
    "oov_share": "Share of the day's word tokens outside the model's vocabulary.",
    "url_share": "Share of the day's messages containing a link.",
    "psi": "Population stability index of the day's scores against the live model's test split.",
    "drift": "1 when the day crossed a [MonitorScores] threshold, else 0.",
}


_PROMOTION_METRICS = {  # shadow summary key -> help text; gauge spam_ham_promotion_<key>
    "newly_blocked_share": "Share of the recent messages the live version passed that the "
                           "last promotion's candidate labelled spam (shadow scoring).",
    "newly_passed_share": "Share of the recent messages the live version blocked that the "
                          "last promotion's candidate passed (shadow scoring).",
    "shadow_messages": "Recent messages the last promotion's shadow scoring compared.",
}


def write_prometheus(path: Path, summary: dict, date: str, name: str,
                     model_version: int | None, promotion: dict | None = None) -> None:
    """Write the day's figures for the node exporter's textfile collector, atomically so the
    collector never reads half a file. The collector reads only ``*.prom`` files; write one
    file per input name (the metric names are shared, the ``input`` label tells them apart).
    ``promotion`` (``version`` and the ``_PROMOTION_METRICS``' values of the last promotion
    with shadow scoring) adds its flip shares, labelled with the version it published."""
    path = Path(path)
    if path.suffix != ".prom":
        raise ValueError(f"{path} does not end in .prom: the textfile collector would ignore it")
    labels = {"input": name} if model_version is None else {
        "input": name, "model_version": str(model_version)}
    label_text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
    midnight = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    values = {key: float(summary[key]) for key in _METRICS}
    values["day_timestamp_seconds"] = midnight.timestamp()
    helps = {**_METRICS, "day_timestamp_seconds": "Midnight UTC of the monitored day."}
    lines = []
    for key, value in values.items():
        metric = f"spam_ham_monitor_{key}"
        lines += [f"# HELP {metric} {helps[key]}", f"# TYPE {metric} gauge",
                  f"{metric}{{{label_text}}} {_number(value)}"]
    for key, help_text in _PROMOTION_METRICS.items() if promotion else ():
        if promotion.get(key) is None:
            continue
        metric = f"spam_ham_promotion_{key}"
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge",
                  f'{metric}{{input="{_escape_label(name)}",version="{promotion["version"]}"}} '
                  f"{_number(float(promotion[key]))}"]
    with atomic_file(path, encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return repr(int(value)) if value.is_integer() else repr(value)
