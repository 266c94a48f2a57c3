"""The client against stand-ins for tensorflow_model_server (whose binary cannot be
installed here): an HTTP server on 127.0.0.1 answering in TF Serving's documented REST
formats and an in-process gRPC PredictionService, both computing answers with our real
export, so every byte the client sends is checked and every answer is real."""
from __future__ import annotations

import contextlib
import http.server
import json
import threading
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, predict_pb2,
                                     prediction_service_pb2_grpc)

from conftest import JsonReplies
from pipeline.cli import client as client_command
from pipeline.serving import client
from pipeline.serving import export
from pipeline.serving import exported_model

MESSAGES = ["WINNER!! claim your £1000 prize now, call 09061234567", "see you at 8?", "中文 😀"]


class FakeTFServingREST(JsonReplies):
    """Implements /v1/models/<name>[...] :predict, :classify, status and metadata."""

    model = None  # tf.saved_model.load(...) of the export
    requests_seen: list = []

    def do_GET(self):
        type(self).requests_seen.append(("GET", self.path, None))
        if self.path == "/v1/models/spam_ham":
            self._reply(200, {"model_version_status": [{
                "version": "1", "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""}}]})
        elif self.path == "/v1/models/spam_ham/metadata":
            self._reply(200, {"model_spec": {"name": "spam_ham", "version": "1"},
                              "metadata": {"signature_def": {"signature_def": {
                                  name: {} for name in export.SIGNATURES}}}})
        else:
            self._reply(404, {"error": f"Servable not found for request: {self.path}"})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        body = json.loads(raw)
        type(self).requests_seen.append(("POST", self.path, body))
        signatures = type(self).model.signatures
        if self.path == "/v1/models/spam_ham:predict":
            if not all(isinstance(t, str) for t in body.get("instances", [None])):
                return self._reply(400, {"error": "instances must be strings"})
            out = signatures[body.get("signature_name", "serving_default")](
                texts=tf.constant(body["instances"]))
            self._reply(200, {"predictions": [
                {"spam_probability": float(p), "label": l.decode()}
                for p, l in zip(out["spam_probability"].numpy(), out["label"].numpy())]})
        elif self.path == "/v1/models/spam_ham:classify":
            serialized = [_example(e["text"]) for e in body["examples"]]
            out = signatures[body.get("signature_name", "serving_default")](
                inputs=tf.constant(serialized))
            self._reply(200, {"results": [
                [[c.decode(), float(s)] for c, s in zip(classes, scores)]
                for classes, scores in zip(out["classes"].numpy(), out["scores"].numpy())]})
        else:
            self._reply(404, {"error": f"Servable not found for request: {self.path}"})


def _example(text: str) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={"text": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[text.encode()]))})).SerializeToString()


@pytest.fixture(scope="module")
def rest_server(small_chain):
    FakeTFServingREST.model = tf.saved_model.load(str(small_chain["export"]))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeTFServingREST)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _clear_seen():
    FakeTFServingREST.requests_seen = []


def test_rest_predict_sends_raw_text_and_returns_the_models_answers(rest_server, small_chain):
    answers = client.RestClient(rest_server).predict(MESSAGES)
    assert FakeTFServingREST.requests_seen == [
        ("POST", "/v1/models/spam_ham:predict",
         {"signature_name": "serving_default", "instances": MESSAGES})]
    expected, labels = exported_model.ServingSignature(small_chain["export"])(MESSAGES)
    assert [a["label"] for a in answers] == labels.tolist()
    np.testing.assert_allclose([a["spam_probability"] for a in answers], expected, atol=1e-6)


def test_rest_classify_sends_examples_with_a_text_feature(rest_server, small_chain):
    answers = client.RestClient(rest_server).classify(MESSAGES)
    assert FakeTFServingREST.requests_seen[0][2] == {
        "signature_name": "classify", "examples": [{"text": m} for m in MESSAGES]}
    expected, _ = exported_model.ServingSignature(small_chain["export"])(MESSAGES)
    np.testing.assert_allclose([a["spam"] for a in answers], expected, atol=1e-6)


def test_rest_status_and_metadata(rest_server):
    rest = client.RestClient(rest_server)
    assert rest.status()["model_version_status"][0]["state"] == "AVAILABLE"
    assert set(rest.metadata()["metadata"]["signature_def"]["signature_def"]) == set(
        export.SIGNATURES)


def test_rest_server_errors_are_reported_with_the_servers_message(rest_server, capsys):
    code = client_command.main(["--rest", rest_server, "--model", "nope", "hello"])
    assert code == 4  # the server answered with an error (3: could not connect)
    error = json.loads(capsys.readouterr().err)
    assert error["kind"] == "server" and "HTTP 404" in error["error"]
    assert "Servable not found" in error["error"]


def test_version_and_label_pick_the_url(rest_server):
    assert client.RestClient(rest_server, version=3).model_path == "/v1/models/spam_ham/versions/3"
    assert client.RestClient(rest_server, label="canary").model_path == \
        "/v1/models/spam_ham/labels/canary"


def test_connection_failures_are_reported_clearly(capsys):
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert client_command.main(["--rest", f"http://127.0.0.1:{port}", "hi"]) == 3
    error = json.loads(capsys.readouterr().err)
    assert error["kind"] == "connection" and "cannot connect" in error["error"]
    assert client_command.main(["--grpc", f"127.0.0.1:{port}", "--timeout", "2", "hi"]) == 3
    assert "cannot reach" in json.loads(capsys.readouterr().err)["error"]


def test_cli_prints_json(rest_server, capsys):
    assert client_command.main(["--rest", rest_server, "WIN cash now"]) == 0
    [answer] = json.loads(capsys.readouterr().out)
    assert set(answer) == {"spam_probability", "label"}


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """gRPC PredictionService answering with the export loaded as the server loads it."""

    def __init__(self, export_dir):
        self.session = exported_model.TF1SessionModel(export_dir)
        self.lock = threading.Lock()
        self.requests: list = []

    def Predict(self, request, context):
        self.requests.append(request)
        if request.model_spec.name != "spam_ham":
            context.abort(grpc.StatusCode.NOT_FOUND, "Servable not found")
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        with self.lock:
            out = self.session.run(request.model_spec.signature_name or "serving_default", inputs)
        response = predict_pb2.PredictResponse()
        for key, value in out.items():  # floats packed, as TF Serving may send them
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        assert response.outputs["spam_probability"].tensor_content
        return response

    def Classify(self, request, context):
        self.requests.append(request)
        serialized = [e.SerializeToString() for e in request.input.example_list.examples]
        with self.lock:
            out = self.session.run(request.model_spec.signature_name, {"inputs": serialized})
        response = classification_pb2.ClassificationResponse()
        for classes, scores in zip(out["classes"], out["scores"]):
            result = response.result.classifications.add()
            for c, s in zip(classes, scores):
                result.classes.add(label=c.decode(), score=float(s))
        return response


@contextlib.contextmanager
def grpc_server(export_dir):
    service = PredictionService(export_dir)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", service
    finally:
        server.stop(None)
        service.session.close()


def test_grpc_predict_and_classify(small_chain):
    expected, labels = exported_model.ServingSignature(small_chain["export"])(MESSAGES)
    with grpc_server(small_chain["export"]) as (address, service):
        rpc = client.GrpcClient(address, version=1)
        answers = rpc.predict(MESSAGES)
        classified = rpc.classify(MESSAGES)
        rpc.close()
    sent = service.requests[0]
    assert sent.model_spec.name == "spam_ham" and sent.model_spec.version.value == 1
    assert sent.model_spec.signature_name == "serving_default"
    assert [s.decode() for s in sent.inputs["texts"].string_val] == MESSAGES
    assert [d.size for d in sent.inputs["texts"].tensor_shape.dim] == [len(MESSAGES)]
    assert [a["label"] for a in answers] == labels.tolist()
    np.testing.assert_allclose([a["spam_probability"] for a in answers], expected, atol=1e-6)
    np.testing.assert_allclose([c["spam"] for c in classified], expected, atol=1e-6)


def test_grpc_server_errors_are_reported(small_chain):
    with grpc_server(small_chain["export"]) as (address, _):
        rpc = client.GrpcClient(address, model="nope")
        with pytest.raises(client.ServerError, match="NOT_FOUND"):
            rpc.predict(["hi"])
        rpc.close()


def test_grpc_floats_are_read_from_either_encoding():
    from tensorflow.core.framework import tensor_pb2
    packed = tf.make_tensor_proto(np.array([0.25, 0.5], np.float32))
    listed = tensor_pb2.TensorProto(float_val=[0.25, 0.5])
    assert client._float_values(packed) == client._float_values(listed) == [0.25, 0.5]
