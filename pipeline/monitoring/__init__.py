"""What a day's scores say: drift statistics against the reference stored in the export
(``drift``: PSI, out-of-vocabulary and link shares, the HTML report and Prometheus file)
and the review queue of messages worth a human label.

May import: ``pipeline.data``, ``pipeline.model`` and the top-level helpers. It sits below
``serving``, which stores the monitoring reference in each export.
"""
