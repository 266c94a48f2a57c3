"""Clients of the served model (TensorFlow Serving's REST and gRPC APIs): raw text in,
the model's answers out.

REST needs only ``requests``; gRPC uses ``tensorflow-serving-api``'s stubs. Neither needs
the vocabulary: the model takes raw text. The command line is ``spam-ham-client``
(:mod:`pipeline.cli.client`).
"""
from __future__ import annotations


import requests


class ServerError(RuntimeError):
    """The server answered with an error (TF Serving's ``{"error": ...}``)."""


class ConnectionFailed(RuntimeError):
    """Nothing answered at the address."""


def _model_path(model: str, version: int | None, label: str | None) -> str:
    path = f"/v1/models/{model}"
    if version is not None:
        path += f"/versions/{version}"
    elif label:
        path += f"/labels/{label}"
    return path


class RestClient:
    """TF Serving's REST API (default port 8501)."""

    def __init__(self, url: str = "http://localhost:8501", model: str = "spam_ham",
                 version: int | None = None, label: str | None = None, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.model_path = _model_path(model, version, label)
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        address = self.url + path
        try:
            response = requests.request(method, address, json=body, timeout=self.timeout)
        except requests.ConnectionError as error:
            raise ConnectionFailed(f"cannot connect to {address}: is tensorflow_model_server "
                                   f"running with --rest_api_port? ({error})") from None
        except requests.Timeout:
            raise ConnectionFailed(f"{address} did not answer within {self.timeout} s") from None
        try:
            payload = response.json()
        except ValueError:
            raise ServerError(f"HTTP {response.status_code} from {address}, not JSON: "
                              f"{response.text[:200]!r}") from None
        if response.status_code >= 400 or "error" in payload:
            raise ServerError(f"HTTP {response.status_code} from {address}: "
                              f"{payload.get('error', payload)}")
        return payload

    def predict(self, texts: list[str], signature: str = "serving_default") -> list[dict]:
        """``[{"spam_probability": p, "label": "spam"|"ham"}, ...]`` in input order."""
        body = {"signature_name": signature, "instances": list(texts)}
        return self._call("POST", self.model_path + ":predict", body)["predictions"]

    def classify(self, texts: list[str], signature: str = "classify") -> list[dict]:
        """``[{"ham": p_ham, "spam": p_spam}, ...]`` from the classification API."""
        body = {"signature_name": signature, "examples": [{"text": t} for t in texts]}
        results = self._call("POST", self.model_path + ":classify", body)["results"]
        return [{label: score for label, score in result} for result in results]

    def status(self) -> dict:
        return self._call("GET", self.model_path)

    def metadata(self) -> dict:
        return self._call("GET", self.model_path + "/metadata")


class GrpcClient:
    """TF Serving's gRPC ``PredictionService`` (default port 8500)."""

    def __init__(self, address: str = "localhost:8500", model: str = "spam_ham",
                 version: int | None = None, label: str | None = None, timeout: float = 10.0):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.address, self.model, self.version, self.label = address, model, version, label
        self.timeout = timeout
        self._grpc = grpc
        self._channel = grpc.insecure_channel(address)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def _spec(self, request, signature: str) -> None:
        request.model_spec.name = self.model
        request.model_spec.signature_name = signature
        if self.version is not None:
            request.model_spec.version.value = self.version
        elif self.label:
            request.model_spec.version_label = self.label

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self._grpc.RpcError as error:
            code = error.code()
            if code in (self._grpc.StatusCode.UNAVAILABLE, self._grpc.StatusCode.DEADLINE_EXCEEDED):
                raise ConnectionFailed(f"cannot reach {self.address} over gRPC: is "
                                       f"tensorflow_model_server running with --port? "
                                       f"({code.name}: {error.details()})") from None
            raise ServerError(f"{code.name} from {self.address}: {error.details()}") from None

    def predict(self, texts: list[str], signature: str = "serving_default") -> list[dict]:
        from tensorflow_serving.apis import predict_pb2
        from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request, signature)
        request.inputs["texts"].CopyFrom(tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(texts))]),
            string_val=[t.encode("utf-8") for t in texts]))
        response = self._call(self._stub.Predict, request)
        probabilities = _float_values(response.outputs["spam_probability"])
        labels = [v.decode() for v in response.outputs["label"].string_val]
        return [{"spam_probability": p, "label": l}
                for p, l in zip(probabilities, labels, strict=True)]

    def classify(self, texts: list[str], signature: str = "classify") -> list[dict]:
        from tensorflow_serving.apis import classification_pb2

        request = classification_pb2.ClassificationRequest()
        self._spec(request, signature)
        for text in texts:
            example = request.input.example_list.examples.add()
            example.features.feature["text"].bytes_list.value.append(text.encode("utf-8"))
        response = self._call(self._stub.Classify, request)
        return [{c.label: c.score for c in result.classes}
                for result in response.result.classifications]

    def close(self) -> None:
        self._channel.close()


def _float_values(tensor) -> list[float]:
    """Floats of a TensorProto, whether packed in ``tensor_content`` or in ``float_val``."""
    if tensor.tensor_content:
        import numpy as np

        return np.frombuffer(tensor.tensor_content, dtype="<f4").tolist()
    return list(tensor.float_val)
