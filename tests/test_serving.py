import json
import multiprocessing
from pathlib import Path

import pytest

from pipeline.serving import model_base


def _fake_export(folder: Path, export_id: str) -> Path:
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    (folder / "assets.extra").mkdir()
    (folder / model_base.PROVENANCE_FILE).write_text(json.dumps({"export_id": export_id}))
    return folder


def test_versions_are_the_integer_folders_only(tmp_path):
    for name in ("1", "3", "10", ".incoming-4-ab", "staging", "007"):
        (tmp_path / name).mkdir()
    (tmp_path / "2").write_text("a file, not a version")
    assert model_base.serving_versions(tmp_path) == [1, 3, 10]
    assert model_base.live_version(tmp_path) == 10
    assert model_base.live_version(tmp_path / "absent") is None


def test_promotion_adds_the_next_version_once(tmp_path):
    base = tmp_path / "serving" / "spam_ham"
    first = _fake_export(tmp_path / "exports" / "a", "a")
    second = _fake_export(tmp_path / "exports" / "b", "b")
    assert model_base.promote_export(first, base, "a") == (1, True)
    assert model_base.promote_export(first, base, "a") == (1, False)
    assert model_base.promote_export(second, base, "b") == (2, True)
    assert model_base.serving_versions(base) == [1, 2]
    assert (base / "2" / "saved_model.pb").read_bytes() == b"graph"
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]


def test_leftovers_of_a_killed_copy_are_never_a_version_and_are_cleaned(tmp_path):
    base = tmp_path / "serving"
    (base / ".incoming-1-deadbeef" / "variables").mkdir(parents=True)
    assert model_base.live_version(base) is None
    model_base.promote_export(_fake_export(tmp_path / "e", "e"), base, "e")
    assert sorted(p.name for p in base.iterdir()) == ["1"]


def _promote(args):
    source, base, export_id = args
    return model_base.promote_export(Path(source), Path(base), export_id)


def test_racing_promotions_of_one_export_add_exactly_one_version(tmp_path):
    base = tmp_path / "serving"
    source = _fake_export(tmp_path / "e", "same")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_promote, [(str(source), str(base), "same")] * 8)
    assert model_base.serving_versions(base) == [1]
    assert sorted(published for _, published in results) == [False] * 7 + [True]


def test_a_pruned_export_still_counts_as_published(tmp_path):
    base = tmp_path / "serving" / "spam_ham"
    for export_id in ("a", "b", "c"):
        model_base.promote_export(_fake_export(tmp_path / "exports" / export_id, export_id), base,
                               export_id, keep_versions=2)
    assert model_base.serving_versions(base) == [2, 3]
    assert model_base.version_of_export(base, "a") is None
    assert model_base.was_published(base, "a")
    assert not model_base.was_published(base, "never")


def test_the_folder_of_no_version_says_what_to_run(tmp_path):
    assert model_base.version_folder(tmp_path, 3) == tmp_path / "3"
    with pytest.raises(model_base.ServingError, match=r"no model version under .*run PromoteVersion"):
        model_base.version_folder(tmp_path, None)
