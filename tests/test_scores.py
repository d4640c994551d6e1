"""The scores file (face_trainer's `score,label,path1,path2[,fold]`): round trips, validation."""

from __future__ import annotations

import numpy as np
import pytest

from facerec.errors import FacerecError, ValidationError
from facerec.evaluation.scores import _read_fast, _read_slow, read_scores, write_scores


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    n = 1000
    s = rng.normal(size=n).astype(np.float32).astype(np.float64)
    y = rng.integers(0, 2, n).astype(np.int8)
    folds = rng.integers(1, 11, n)
    p1 = [f"Person_{i}/img {i:04d}.jpg" for i in range(n)]  # inner spaces are kept
    p2 = [f"Other_{i}/x_{i}.png" for i in range(n)]
    path = tmp_path / "scores.csv"
    write_scores(path, s, y, p1, p2, folds)
    back = read_scores(path)
    assert back.scores.tobytes() == s.tobytes()  # repr round-trips every float bit for bit
    assert back.labels.tolist() == y.tolist() and back.folds.tolist() == folds.tolist()
    assert back.path1 == p1 and back.path2 == p2 and back.has_labels
    assert path.read_text().splitlines()[0] == f"{float(s[0])!r},{y[0]},{p1[0]},{p2[0]},{folds[0]}"
    write_scores(path, s[:3], y[:3], p1[:3], p2[:3])
    assert read_scores(path).folds is None and len(read_scores(path)) == 3


def test_fast_and_slow_readers_agree(tmp_path):
    text = ("# written by hand\n0.5,1,a.jpg,b.jpg,1\n\n 0.25 , 0 ,c d.jpg, e.jpg ,2\r\n"
            "-1e-3,1,f.jpg,g.jpg,1\n")
    lines = text.replace("\r\n", "\n").split("\n")[:-1]
    fast, slow = _read_fast(lines, {"0": 0, "1": 1}), _read_slow("x", lines, {"0": 0, "1": 1})
    assert _read_fast(lines + ["   "], {"0": 0, "1": 1}) is None  # a blank-looking line: hand over
    for got in (fast, slow):
        assert got.scores.tolist() == [0.5, 0.25, -0.001] and got.labels.tolist() == [1, 0, 1]
        assert got.path1 == ["a.jpg", "c d.jpg", "f.jpg"] and got.path2 == ["b.jpg", "e.jpg", "g.jpg"]
        assert got.folds.tolist() == [1, 2, 1]
    path = tmp_path / "s.csv"
    path.write_bytes(text.encode())
    assert read_scores(path).path1 == slow.path1


def test_every_malformed_line_reported_together(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([
        "0.5,1,a,b",          # 1 fine
        "xx,1,a,b",           # 2 score not a number
        "0.3,7,a,b",          # 3 label not 0/1
        "0.1,1,a",            # 4 three columns
        "nan,0,a,b",          # 5 score not finite
        "0.2,1,,b",           # 6 empty path
        "0.2,2,a,b,z,w",      # 7 six columns
        "bad,bad,a,b",        # 8 two problems on one line
    ]) + "\n")
    with pytest.raises(ValidationError) as exc:
        read_scores(path)
    msg = str(exc.value)
    for expected in (":2: score is not a number", ":3: label must be '0' or '1', got '7'",
                     ":4: expected 4 or 5 columns", ":5: score is not finite", ":6: empty image path",
                     ":7: expected 4 or 5 columns", ":8: score is not a number", ":8: label must be"):
        assert f"{path}{expected}" in msg, expected
    assert f"{path}:1:" not in msg and len(exc.value.problems) == 8


def test_fold_column_problems(tmp_path):
    path = tmp_path / "folds.csv"
    path.write_text("0.5,1,a,b,1\n0.4,0,c,d,x\n0.3,0,e,f\n0.2,1,g,h,2\n")
    with pytest.raises(ValidationError) as exc:
        read_scores(path)
    msg = str(exc.value)
    assert f"{path}:2: fold must be an integer, got 'x'" in msg
    assert "the fold column must be on every line or on none; lines 3 lack it" in msg


def test_unknown_label_placeholder(tmp_path):
    path = tmp_path / "submission.csv"
    write_scores(path, [0.5, 0.4], np.array([-1, -1]), ["a", "c"], ["b", "d"])
    assert path.read_text() == "0.5,-1,a,b\n0.4,-1,c,d\n"
    with pytest.raises(ValidationError, match=r"submission.csv:1: label must be '0' or '1', got '-1'"):
        read_scores(path)
    got = read_scores(path, unknown_label="-1")
    assert got.labels.tolist() == [-1, -1] and not got.has_labels
    # Label texts are echoed as given, e.g. an empty placeholder from a `path1,path2` test list.
    write_scores(path, [0.5, 0.4], ["", "1"], ["a", "c"], ["b", "d"])
    assert read_scores(path, unknown_label="").labels.tolist() == [-1, 1]


def test_write_refuses_fields_that_would_shift_columns_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "scores.csv"
    write_scores(path, [0.5], [1], ["a"], ["b"])
    with pytest.raises(ValidationError, match=r"pair 1: field 'x,y.jpg' contains a comma"):
        write_scores(path, [0.5, 0.4], [1, 0], ["a", "x,y.jpg"], ["b", "c"])
    with pytest.raises(FacerecError, match="2 scores but path2 has 1"):
        write_scores(path, [0.5, 0.4], [1, 0], ["a", "c"], ["b"])
    with pytest.raises(FacerecError, match="NaN"):
        write_scores(path, [np.nan], [1], ["a"], ["b"])
    assert path.read_text() == "0.5,1,a,b\n" and [p.name for p in tmp_path.iterdir()] == ["scores.csv"]


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FacerecError, match="not found"):
        read_scores(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("# nothing yet\n")
    with pytest.raises(FacerecError, match="no scores"):
        read_scores(tmp_path / "empty.csv")
