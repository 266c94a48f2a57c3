"""The classifier: its settings (``config``, no TensorFlow), its layers, how it is built
and trained (``network``), the SVM teacher it learns from, the fused inference graph of
the export, metrics and the training report, and one training run end to end.

May import: ``pipeline.data`` and the top-level helpers.
"""
