"""Train lists and pair CSVs: real ORL/LFW files, and every bad input reported with its line."""

from __future__ import annotations

import pytest

from facerec.data.lists import load_train, read_pairs, read_train_list, scan_identity_folder, write_pairs
from facerec.errors import FacerecError, ValidationError


def test_identity_folder_orl(orl_dir):
    t = scan_identity_folder(orl_dir)
    assert len(t) == 400 and t.num_classes == 40
    # face_trainer's class index: sorted identity names (s1, s10, s11, ..., s2, ...)
    assert t.classes[:3] == ["s1", "s10", "s11"]
    assert t.labels[t.identities.index("s10")] == 1


def test_train_list_root_comment_and_explicit_root(tmp_path, orl_dir):
    lst = tmp_path / "train.txt"
    lst.write_text(f"# root: {orl_dir}\ns1 s1/1.pgm\ns2 s2/1.pgm\n")
    t = read_train_list(lst)
    assert t.root == orl_dir and t.paths == ["s1/1.pgm", "s2/1.pgm"]
    plain = tmp_path / "plain.txt"
    plain.write_text("s1 s1/1.pgm\n")
    assert read_train_list(plain, root=orl_dir).root == orl_dir


def test_train_list_reports_every_problem_with_line_numbers(tmp_path, orl_dir):
    lst = tmp_path / "train.txt"
    lst.write_text("s1 s1/1.pgm\nonly_one_field\ns2 s2/missing.pgm\ns3 s3/1.pgm extra\n")
    with pytest.raises(ValidationError) as exc:
        read_train_list(lst, root=orl_dir)
    msg = str(exc.value)
    assert f"{lst}:2" in msg and f"{lst}:3" in msg and f"{lst}:4" in msg
    assert "missing.pgm" in msg and len(exc.value.problems) == 3


def test_empty_identity_folder(tmp_path):
    (tmp_path / "alice").mkdir()
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "1.png").write_bytes(b"x")
    with pytest.raises(ValidationError, match="alice: empty identity folder"):
        scan_identity_folder(tmp_path)


def test_missing_folder_and_list():
    with pytest.raises(FacerecError, match="not found"):
        load_train("/nonexistent/facerec/train.txt")


def test_pairs_course_format(tmp_path, orl_dir):
    csv = tmp_path / "val.csv"
    csv.write_text("1,s1/1.pgm,s1/2.pgm\n0,s1/1.pgm,s2/1.pgm\n")
    p = read_pairs(csv, orl_dir)
    assert p.labels.tolist() == [1, 0] and p.folds is None and p.has_labels
    uniq, i1, i2 = p.unique_paths()
    assert uniq == ["s1/1.pgm", "s1/2.pgm", "s2/1.pgm"] and i1.tolist() == [0, 0] and i2.tolist() == [1, 2]


def test_pairs_bad_lines_all_reported(tmp_path, orl_dir):
    csv = tmp_path / "val.csv"
    csv.write_text(
        "1,s1/1.pgm,s1/2.pgm\n"
        "2,s1/1.pgm,s1/3.pgm\n"  # label not 0/1
        "1,s1/1.pgm\n"  # malformed
        "0,s1/2.pgm,s1/1.pgm\n"  # duplicate (reversed)
        "0,s1/1.pgm,s9/99.pgm\n"  # missing image
    )
    with pytest.raises(ValidationError) as exc:
        read_pairs(csv, orl_dir)
    msg = str(exc.value)
    for needle in (":2: label must be 0 or 1", ":3: expected", ":4: duplicate pair (first on line 1)", ":5: image not found"):
        assert needle in msg


def test_pairs_unknown_labels_for_test_lists(tmp_path, orl_dir):
    csv = tmp_path / "test.csv"
    csv.write_text("s1/1.pgm,s1/2.pgm\n?,s1/1.pgm,s2/1.pgm\n")
    p = read_pairs(csv, orl_dir, allow_unknown=True)
    assert p.labels.tolist() == [-1, -1] and not p.has_labels
    with pytest.raises(ValidationError):
        read_pairs(csv, orl_dir)


def test_pairs_round_trip_with_folds(tmp_path, orl_dir):
    out = tmp_path / "pairs.csv"
    write_pairs(out, orl_dir, [1, 0], ["s1/1.pgm", "s1/1.pgm"], ["s1/2.pgm", "s2/2.pgm"], [1, 2])
    p = read_pairs(out)
    assert p.root == orl_dir.resolve() and p.folds.tolist() == [1, 2]


def test_a_stray_label_in_a_labelled_list_is_an_error_even_for_test_lists(tmp_path, orl_dir):
    csv = tmp_path / "val.csv"
    csv.write_text("1,s1/1.pgm,s1/2.pgm\n2,s1/1.pgm,s2/1.pgm\n")
    with pytest.raises(ValidationError, match=r"val.csv:2: label must be 0 or 1, got '2'"):
        read_pairs(csv, orl_dir, allow_unknown=True)


def test_duplicate_in_a_folded_list_is_reported_once(tmp_path, orl_dir):
    csv = tmp_path / "val.csv"
    csv.write_text("1,s1/1.pgm,s1/2.pgm,1\n1,s1/2.pgm,s1/1.pgm,1\n0,s1/1.pgm,s2/1.pgm,2\n")
    with pytest.raises(ValidationError) as exc:
        read_pairs(csv, orl_dir)
    assert exc.value.problems == [f"{csv}:2: duplicate pair (first on line 1): s1/2.pgm, s1/1.pgm"]
