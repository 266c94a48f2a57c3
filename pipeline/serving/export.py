"""Write the SavedModel that TF Serving loads: raw text in, spam probability and label out.
(Loading and measuring an export: :mod:`pipeline.serving.exported_model`.)

Standardization, vocabulary lookup, the recurrent model and the decision threshold all
live in the graph, so a client sends plain UTF-8 messages and needs neither TensorFlow nor
the vocabulary. Three signatures answer the three ways a TF Serving client may ask:

* ``serving_default`` and ``predict_spam`` (the textbook recipe's name): ``texts`` ->
  ``spam_probability``, ``label``; the REST ``:predict`` API and gRPC ``Predict``.
* ``classify``: serialized ``tf.Example`` protos with a bytes feature ``text`` -> ``classes``
  (``["ham", "spam"]``) and ``scores``; the REST ``:classify`` API and gRPC ``Classify``.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import keras
import tensorflow as tf

from pipeline.model import fused_gru
from pipeline.data import text

SERVING_DEFAULT = "serving_default"
PREDICT_SPAM = "predict_spam"
CLASSIFY = "classify"
SIGNATURES = (SERVING_DEFAULT, PREDICT_SPAM, CLASSIFY)
CLASS_NAMES = ("ham", "spam")
TEXT_FEATURE = "text"
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
PROVENANCE_FILE = "assets.extra/provenance.json"
# What drift monitoring compares each day with (MonitorScores): the vocabulary, and the
# test split's scores and token statistics through this export's own signature.
VOCABULARY_FILE = "assets.extra/vocabulary.txt"
MONITORING_REFERENCE_FILE = "assets.extra/monitoring_reference.json"
MAX_WARMUP_RECORDS = 1000

# Real messages of both kinds, short and long, sent to each signature at load time.
WARMUP_MESSAGES = (
    "WINNER!! As a valued network customer you have been selected to receive a £900 prize "
    "reward! To claim call 09061701461. Claim code KL341. Valid 12 hours only.",
    "Ok lar... Joking wif u oni...",
    "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005. Text FA to 87121",
    "I'm gonna be home soon and i don't want to talk about this stuff anymore tonight",
    "",
)


def export_classifier(model: keras.Model, vocabulary: list[str], max_length: int,
                      threshold: float, destination: Path, provenance: dict,
                      model_name: str = "spam_ham", char_gram_buckets: int = 0,
                      word_grams: int = 0) -> None:
    """Write the SavedModel, its warmup requests and its provenance into ``destination``.

    ``max_length``, ``char_gram_buckets`` and ``word_grams`` are the settings the model
    was trained with.
    """
    lookup = text.make_lookup(vocabulary)
    threshold_value = float(threshold)
    fused = fused_gru.fuse(model, vocabulary, word_grams)

    def score(texts):
        tokens = text.tokenize(texts)
        token_ids = tf.ragged.map_flat_values(lookup.lookup, tokens)
        ids = text.padded_ids(token_ids, max_length)
        if fused:
            return fused(ids, tokens, token_ids) if char_gram_buckets else fused(ids)
        inputs = ids if not char_gram_buckets else {
            "token_ids": ids, **text.gram_inputs(tokens, char_gram_buckets, word_grams)}
        return tf.reshape(model(inputs, training=False), [-1])

    def predict(texts):
        probability = score(texts)
        label = tf.where(probability >= threshold_value, CLASS_NAMES[1], CLASS_NAMES[0])
        return {"spam_probability": probability, "label": label}

    def classify(inputs):
        features = tf.io.parse_example(inputs, {TEXT_FEATURE: tf.io.FixedLenFeature([], tf.string)})
        probability = score(features[TEXT_FEATURE])
        scores = tf.stack([1.0 - probability, probability], axis=1)
        classes = tf.tile(tf.constant([CLASS_NAMES]), [tf.shape(probability)[0], 1])
        return {"classes": classes, "scores": scores}

    archive = keras.export.ExportArchive()
    archive.track(fused if fused else model)
    archive.track(lookup)
    texts_spec = [tf.TensorSpec([None], tf.string, name="texts")]
    # predict_spam reuses serving_default's tf.function, traced here for both (an
    # endpoint given a traced tf.function is saved as it is): the archive would give
    # each endpoint a function of its own to trace, and the scoring graph is the slow
    # part to trace.
    traced_predict = archive.add_endpoint(SERVING_DEFAULT, predict, input_signature=texts_spec)
    traced_predict.get_concrete_function()
    archive.add_endpoint(PREDICT_SPAM, traced_predict)
    archive.add_endpoint(CLASSIFY, classify,
                         input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    archive.write_out(str(destination), verbose=False)
    _mark_classify_signature(destination)
    write_warmup_requests(destination / WARMUP_FILE, model_name)
    (destination / PROVENANCE_FILE).write_text(
        json.dumps({**provenance, "threshold": threshold_value,
                    "network": _network_kind(fused)}, indent=2, sort_keys=True))


def _network_kind(fused) -> str:
    """How the export computes the network, for its provenance."""
    return "fused GRU" if fused else "keras"


def _mark_classify_signature(export_dir: Path) -> None:
    """Give the ``classify`` SignatureDef the method TF Serving routes ``Classify`` to.

    TF2's writers label every signature ``tensorflow/serving/predict``; TF Serving only
    accepts a Classify request on a signature whose method is ``.../classify``. TF's public
    ``MethodNameUpdater`` rewrites ``saved_model.pb``; then ``fingerprint.pb`` (checksums
    of the saved model) is written anew to match it.
    """
    updater = tf.compat.v1.saved_model.signature_def_utils.MethodNameUpdater(str(export_dir))
    updater.replace_method_name(CLASSIFY, tf.saved_model.CLASSIFY_METHOD_NAME)
    updater.save()
    _write_fingerprint(export_dir)


def _write_fingerprint(export_dir: Path) -> None:
    """Write ``fingerprint.pb`` for the saved model as it is now.

    TensorFlow 2.21 has no public API that writes a fingerprint, so this calls the writer
    that ``tf.saved_model.save`` itself uses. Should an upgrade remove it, the stale file is
    removed instead: the fingerprint is optional, but without it every load logs "Fingerprint
    not found" through absl, which also configures the root logger (Luigi's lines would be
    printed twice), so tests/test_export.py checks that it is there and current.
    """
    (export_dir / "fingerprint.pb").unlink(missing_ok=True)
    try:
        from tensorflow.python.saved_model import fingerprinting_utils
    except ImportError:  # pragma: no cover - a TensorFlow that moved its private writer
        return
    fingerprinting_utils.write_fingerprint(str(export_dir))


# --------------------------------------------------------------------------- warmup


def warmup_requests(model_name: str, messages=WARMUP_MESSAGES) -> list:
    """``PredictionLog`` protos: each message alone and all together, for each signature."""
    from tensorflow_serving.apis import (classification_pb2, predict_pb2,
                                         prediction_log_pb2)
    batches = [[m] for m in messages] + [list(messages)]
    logs = []
    for signature in (SERVING_DEFAULT, PREDICT_SPAM):
        for batch in batches:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            request.inputs["texts"].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
            logs.append(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)))
    for batch in batches:
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = CLASSIFY
        for message in batch:
            example = request.input.example_list.examples.add()
            example.features.feature[TEXT_FEATURE].bytes_list.value.append(message.encode())
        logs.append(prediction_log_pb2.PredictionLog(
            classify_log=prediction_log_pb2.ClassifyLog(request=request)))
    assert len(logs) <= MAX_WARMUP_RECORDS
    return logs


def write_warmup_requests(path: Path, model_name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in warmup_requests(model_name):
            writer.write(log.SerializeToString())


def code_version() -> str:
    """``git describe`` of the checkout running the pipeline, or ``unknown``."""
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
