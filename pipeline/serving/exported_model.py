"""Load an export: its ``serving_default`` signature in TF2 (as BatchScore runs it), the
whole export in a TF1 session (as ``tensorflow_model_server`` runs it), its warmup
requests, provenance and monitoring reference; measure it on labelled messages (and store
the monitoring reference, the test split measured through it); and load the live version
of a model base path. (Writing an export: :mod:`pipeline.serving.export`, which never imports this
module.)
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipeline.serving import batching
from pipeline.serving.export import (CLASS_NAMES, MONITORING_REFERENCE_FILE, PROVENANCE_FILE,
                                     SERVING_DEFAULT, VOCABULARY_FILE, WARMUP_FILE)

logger = logging.getLogger("luigi-interface")


def read_warmup_requests(export_dir: Path | str) -> list:
    from tensorflow_serving.apis import prediction_log_pb2
    path = Path(export_dir) / WARMUP_FILE
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(str(path))]


def read_provenance(export_dir: Path | str) -> dict:
    return json.loads((Path(export_dir) / PROVENANCE_FILE).read_text())


def read_monitoring_reference(export_dir: Path | str) -> tuple[dict, list[str]]:
    """The reference and vocabulary that :func:`write_monitoring_reference` stored."""
    folder = Path(export_dir)
    if not (folder / MONITORING_REFERENCE_FILE).is_file():
        raise FileNotFoundError(
            f"{folder} has no {MONITORING_REFERENCE_FILE}: it was exported before drift "
            "monitoring existed. Promote a newly trained version to monitor its scores")
    words = (folder / VOCABULARY_FILE).read_text(encoding="utf-8").split("\n")[:-1]
    return json.loads((folder / MONITORING_REFERENCE_FILE).read_text()), words


class ServingSignature:
    """``serving_default`` of an export, loaded with TF2 as BatchScore runs it."""

    def __init__(self, export_dir: Path | str):
        self.export_dir = Path(export_dir)
        self._loaded = tf.saved_model.load(str(export_dir))
        self._function = self._loaded.signatures[SERVING_DEFAULT]

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Spam probabilities (float32) and labels (str) for a batch of raw messages."""
        outputs = self._function(texts=tf.constant(texts, tf.string))
        labels = outputs["label"].numpy().astype(str)
        return outputs["spam_probability"].numpy(), labels


class TF1SessionModel:
    """An export loaded the way ``tensorflow_model_server`` loads it: a TF1 session whose
    signatures are run by the tensor names in their SignatureDefs."""

    def __init__(self, export_dir: Path | str):
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph)
        with self._graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(
                self._session, [tf.saved_model.SERVING], str(export_dir))
        self.signature_defs = dict(meta_graph.signature_def)

    def run(self, signature: str, inputs: dict[str, object]) -> dict[str, np.ndarray]:
        definition = self.signature_defs[signature]
        feeds = {definition.inputs[key].name: value for key, value in inputs.items()}
        fetches = {key: info.name for key, info in definition.outputs.items()}
        return self._session.run(fetches, feed_dict=feeds)

    def replay(self, log) -> dict[str, np.ndarray]:
        """Answer one warmup ``PredictionLog`` as the server would at load time."""
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            request = log.predict_log.request
            inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
            return self.run(request.model_spec.signature_name or SERVING_DEFAULT, inputs)
        if kind == "classify_log":
            request = log.classify_log.request
            serialized = [e.SerializeToString() for e in request.input.example_list.examples]
            return self.run(request.model_spec.signature_name, {"inputs": serialized})
        raise ValueError(f"unsupported warmup record type {kind!r}")

    def close(self) -> None:
        self._session.close()


class ExportEvaluator:
    """An export loaded once and measured on labelled messages through its
    ``serving_default`` signature and the threshold it carries: what serving would
    decide. The gate measures candidate and live on several sets with one load each."""

    def __init__(self, export_dir: Path | str):
        self.signature = ServingSignature(export_dir)
        provenance = read_provenance(export_dir)
        self.threshold = provenance["threshold"]
        # how that threshold was chosen (which source's validation part set it)
        self.threshold_rule = provenance.get("metrics", {}).get("threshold_rule")

    def __call__(self, texts: list[str], labels: np.ndarray, batch_size: int = 1024
                 ) -> tuple[dict, np.ndarray]:
        """The metrics at the export's threshold, and each message's decision (True:
        labelled spam), for paired comparisons of two versions on the same messages."""
        from pipeline.model import metrics

        probabilities, _ = batching.score_texts(texts, self.signature, batch_size)
        return (metrics.classification_metrics(labels, probabilities, self.threshold),
                np.asarray(probabilities, float) >= self.threshold)


def write_monitoring_reference(export_dir: Path, vocabulary: list[str],
                               test_texts: list[str]) -> dict:
    """Store what the model saw at training time beside the export: its vocabulary, and
    the scores (through its ``serving_default`` signature) and token statistics of the
    test split. Returns the reference."""
    from pipeline.monitoring import drift
    from pipeline.data import text

    probabilities, labels = batching.score_texts(test_texts, ServingSignature(export_dir), 1024)
    counts = text.token_statistics(test_texts, text.make_lookup(vocabulary))
    reference = drift.Reference(
        histogram=drift.score_histogram(probabilities), rows=len(test_texts),
        spam_share=float(np.mean(labels == CLASS_NAMES[1])),
        mean_probability=float(np.mean(probabilities)),
        oov_share=counts["oov_tokens"] / max(counts["word_tokens"], 1),
        url_share=counts["url_messages"] / max(counts["messages"], 1))
    (export_dir / VOCABULARY_FILE).write_text("".join(w + "\n" for w in vocabulary),
                                              encoding="utf-8")
    (export_dir / MONITORING_REFERENCE_FILE).write_text(
        json.dumps(reference.as_dict(), indent=2) + "\n")
    return reference.as_dict()


def load_live_signature(base: Path, version: int | None, concurrent_batches: int = 1):
    """The ``serving_default`` signature of published ``version`` under ``base``, or an
    error that says what to do.

    For ``concurrent_batches`` > 1, each batch is first given one TensorFlow thread when
    TensorFlow has not started in this process yet (see ``scoring``)."""
    from pipeline.serving import model_base

    if concurrent_batches > 1 and not batching.one_tensorflow_thread_per_batch():
        logger.info("TensorFlow already runs in this process: concurrent batches keep its "
                    "default threads (a scoring-only run is faster)")
    folder = model_base.version_folder(base, version)
    try:
        return ServingSignature(folder)
    except Exception as error:  # noqa: BLE001 - TF raises many types for a bad folder
        raise RuntimeError(
            f"cannot load the live model version {version} from {folder}: "
            f"{type(error).__name__}: {str(error).splitlines()[0][:300]}. Roll back to a "
            "good version (spam-ham-versions rollback N) or remove the broken "
            "folder") from None
