"""Everything about a served model: writing the export (``export``), loading and
measuring one (``exported_model``, ``batching``), the model base path's versions,
promotion, the gate and rollback (``model_base``, ``promotion``, ``promotion_gate``),
TensorFlow Serving's configuration files (``deployment``), the smoke test, and the REST
and gRPC clients.

May import: ``pipeline.data``, ``pipeline.model``, ``pipeline.monitoring`` and the
top-level helpers.
"""
