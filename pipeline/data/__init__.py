"""The labelled messages and the text rules: downloading and parsing the corpus and extra
sources, labelled files in every format, the split, the vocabulary, tokenization.

May import: the top-level helpers (``pipeline.settings``, ``pipeline.atomic_output``) and
this package (tests/test_imports.py checks the layers).
"""
