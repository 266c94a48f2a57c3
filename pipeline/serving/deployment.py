"""TF Serving's deployment files, written next to the model base path and read back:

* ``models.config`` (``--model_config_file``): TF Serving's ``ModelServerConfig`` proto
  from ``tensorflow-serving-api``, serving the newest version, or pinned ``stable`` and
  ``canary`` versions with version labels;
* ``batching_parameters.txt`` (``--enable_batching --batching_parameters_file``): a
  ``BatchingParameters`` text proto;
* ``monitoring.config`` (``--monitoring_config_file``): a ``MonitoringConfig`` text proto
  that exposes Prometheus metrics on the REST port.

``tensorflow-serving-api`` ships ``ModelServerConfig`` but not ``BatchingParameters`` and
``MonitoringConfig`` (they live in the server's own sources), so those two messages are
declared here with TF Serving's field names and types (the values are
``google.protobuf`` wrappers, as in the server) and written and parsed with protobuf's
``text_format``, as the server parses them. Pure functions, no Luigi.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf import wrappers_pb2

from pipeline.atomic_output import atomic_file

MODEL_CONFIG = "models.config"
BATCHING_PARAMETERS = "batching_parameters.txt"
MONITORING_CONFIG = "monitoring.config"
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


@dataclass(frozen=True)
class Batching:
    """Server-side batching of concurrent requests (TF Serving's batching guide: on CPU,
    ``num_batch_threads`` = cores and a short timeout)."""

    max_batch_size: int = 256
    batch_timeout_micros: int = 2_000
    num_batch_threads: int = 2
    max_enqueued_batches: int = 100


# ------------------------------------------------------------------ the two declared protos

def _declare_messages():
    wrappers = wrappers_pb2.DESCRIPTOR.name  # google/protobuf/wrappers.proto
    pool = descriptor_pool.DescriptorPool()
    wrapper_file = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrapper_file)
    pool.Add(wrapper_file)
    declared = descriptor_pb2.FileDescriptorProto(
        name="spam_pipeline/tf_serving_config.proto", package="tensorflow.serving",
        syntax="proto3", dependency=[wrappers])
    field = descriptor_pb2.FieldDescriptorProto
    batching = declared.message_type.add(name="BatchingParameters")
    for number, name in enumerate(("max_batch_size", "batch_timeout_micros",
                                   "max_enqueued_batches", "num_batch_threads"), start=1):
        batching.field.add(name=name, number=number, type=field.TYPE_MESSAGE,
                           type_name=".google.protobuf.Int64Value",
                           label=field.LABEL_OPTIONAL)
    batching.field.add(name="allowed_batch_sizes", number=6, type=field.TYPE_INT64,
                       label=field.LABEL_REPEATED)
    batching.field.add(name="pad_variable_length_inputs", number=7, type=field.TYPE_BOOL,
                       label=field.LABEL_OPTIONAL)
    prometheus = declared.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=field.TYPE_BOOL,
                         label=field.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=field.TYPE_STRING,
                         label=field.LABEL_OPTIONAL)
    monitoring = declared.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1, type=field.TYPE_MESSAGE,
                         type_name=".tensorflow.serving.PrometheusConfig",
                         label=field.LABEL_OPTIONAL)
    pool.Add(declared)
    return tuple(message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
        for name in ("BatchingParameters", "MonitoringConfig"))


BatchingParameters, MonitoringConfig = _declare_messages()


# ------------------------------------------------------------------------------ building

def model_server_config(model_name: str, base: Path, stable: int | None = None,
                        canary: int | None = None):
    """``ModelServerConfig``: the newest version of ``base``, or ``stable`` (and
    ``canary``) with version labels so clients can ask for ``/labels/stable``."""
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(name=model_name, base_path=str(base.resolve()),
                                                model_platform="tensorflow")
    if stable is None:
        if canary is not None:
            raise ValueError("a canary needs a stable version beside it (--stable N)")
        model.model_version_policy.latest.num_versions = 1
        return config
    versions = [stable] + ([canary] if canary is not None else [])
    model.model_version_policy.specific.versions.extend(versions)
    model.version_labels["stable"] = stable
    if canary is not None:
        model.version_labels["canary"] = canary
    return config


def batching_parameters(batching: Batching = Batching()):
    parameters = BatchingParameters()
    for name in ("max_batch_size", "batch_timeout_micros", "num_batch_threads",
                 "max_enqueued_batches"):
        getattr(parameters, name).value = getattr(batching, name)
    return parameters


def monitoring_config(path: str = PROMETHEUS_PATH):
    config = MonitoringConfig()
    config.prometheus_config.enable = True
    config.prometheus_config.path = path
    return config


def write_text_proto(path: Path, message) -> Path:
    with atomic_file(path, "w", encoding="utf-8") as handle:
        handle.write(text_format.MessageToString(message))
    return path


def read_text_proto(path: Path, message_class):
    """Parse ``path`` as the server does; an unknown field or bad value raises
    ``text_format.ParseError`` naming the line."""
    return text_format.Parse(Path(path).read_text(encoding="utf-8"), message_class())


def write_deployment_files(folder: Path, model_name: str, base: Path,
                           stable: int | None = None, canary: int | None = None,
                           batching: Batching = Batching()) -> dict[str, Path]:
    """Write the three files into ``folder``; returns their paths by flag."""
    return {
        "model_config_file": write_text_proto(
            folder / MODEL_CONFIG, model_server_config(model_name, base, stable, canary)),
        "batching_parameters_file": write_text_proto(
            folder / BATCHING_PARAMETERS, batching_parameters(batching)),
        "monitoring_config_file": write_text_proto(folder / MONITORING_CONFIG,
                                                   monitoring_config()),
    }


def server_command(files: dict[str, Path], poll_wait_seconds: int = 60,
                   labels: bool = False) -> list[str]:
    """The ``tensorflow_model_server`` command line that uses ``files``."""
    command = ["tensorflow_model_server", "--port=8500", "--rest_api_port=8501",
               f"--model_config_file={files['model_config_file']}",
               f"--model_config_file_poll_wait_seconds={poll_wait_seconds}",
               "--enable_batching",
               f"--batching_parameters_file={files['batching_parameters_file']}",
               f"--monitoring_config_file={files['monitoring_config_file']}"]
    if labels:
        command.append("--allow_version_labels_for_unavailable_models")
    return command
