"""Batch scoring: the input and output file formats (``batch_files``), the input's stamp
(``input_stamp``), the local engine and the Spark engine.

May import: every package but ``tasks`` and ``cli``.
"""
