"""The files of examples/ read as the product reads them: every batch input format gives
the same messages with the same ids (pipeline.scoring.batch_files, as BatchScore reads
them), and the labelled examples parse with the labelled-file reader of extra sources
and evaluation sets (pipeline.data.labelled_files), with the same labels."""
from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from conftest import REPO
from pipeline.data.labelled_files import parse_labelled
from pipeline.scoring.batch_files import INPUT_FORMATS, read_messages

EXAMPLES = REPO / "examples"


def _make_examples():
    spec = importlib.util.spec_from_file_location("make_examples",
                                                  EXAMPLES / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE = _make_examples()
BATCH_INPUTS = sorted(EXAMPLES.glob("messages.*"))


def _read(path) -> pd.DataFrame:
    return pd.concat(list(read_messages(path, chunk_rows=4)), ignore_index=True)


def test_there_is_an_example_of_every_input_format():
    formats = {INPUT_FORMATS[path.suffix] for path in BATCH_INPUTS}
    assert formats == set(INPUT_FORMATS.values())


@pytest.mark.parametrize("path", BATCH_INPUTS, ids=lambda path: path.name)
def test_every_format_gives_the_same_messages_and_ids(path):
    frame = _read(path)
    assert frame["id"].tolist() == MAKE.IDS
    assert frame["text"].tolist() == MAKE.MESSAGES


def test_the_messages_hold_the_cases_worth_showing():
    texts = MAKE.MESSAGES
    assert 8 <= len(texts) <= 12
    assert "" in texts                                        # an empty line in messages.txt
    assert any("," in text for text in texts) and any('"' in text for text in texts)
    assert any(not text.isascii() for text in texts)


@pytest.mark.parametrize("name", ["labelled.tsv", "labelled-review.csv"])
def test_the_labelled_examples_parse_with_the_labelled_file_reader(name):
    path = EXAMPLES / name
    messages = parse_labelled(path.read_bytes(), str(path), "examples/")
    expected = [(text, label == "spam") for _, text, _, _, label in MAKE.REVIEWED]
    assert list(zip(messages.texts, messages.labels.tolist())) == expected
    # the review copy's apostrophe before "+44" is the spreadsheet's, not the message's
    assert "+44 7700 900123 is my new number, save it" in messages.texts


def test_the_files_are_what_make_examples_writes(tmp_path):
    MAKE.write_batch_inputs(tmp_path)
    MAKE.write_labelled(tmp_path)
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == sorted(path.name for path in EXAMPLES.iterdir()
                             if path.suffix not in (".py", ".md"))
    for name in written:
        if name.endswith(".parquet"):  # its footer names the pyarrow version that wrote it
            assert pd.read_parquet(tmp_path / name).equals(pd.read_parquet(EXAMPLES / name))
        else:
            assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes(), name


def test_the_scoring_command_of_the_readme_names_each_example():
    """examples/README.md's command, as luigi parses it, scores the file it names (and
    each other example the same way)."""
    import shlex

    from luigi.cmdline_parser import CmdlineParser

    readme = (EXAMPLES / "README.md").read_text()
    [line] = [line for line in readme.splitlines() if " BatchScore " in line]
    argv = shlex.split(line)[1:]
    assert argv[argv.index("--input") + 1] == "examples/messages.csv"
    for path in BATCH_INPUTS:
        argv[argv.index("--input") + 1] = f"examples/{path.name}"
        with CmdlineParser.global_instance(argv) as parser:
            task = parser.get_task_obj()
        assert task.task_family == "BatchScore" and task.messages_path == f"examples/{path.name}"
