"""`facerec lists lfw` against the official protocol files' own counts."""

from __future__ import annotations

import pytest

from facerec.cli import main
from facerec.data import lfw
from facerec.data.lists import read_pairs, read_train_list


@pytest.fixture(scope="module")
def lfw_lists(tmp_path_factory, data_root_lfw):
    out = tmp_path_factory.mktemp("lists")
    assert main(["lists", "lfw", "--data-root", str(data_root_lfw), "--out", str(out)]) == 0
    return out


def test_view1(lfw_lists, lfw_dir):
    train = read_train_list(lfw_lists / "view1_train.txt")
    people = [line.split("\t") for line in (lfw_dir / "peopleDevTrain.txt").read_text().splitlines()[1:]]
    assert train.num_classes == 4038 == len(people)
    assert len(train) == sum(int(n) for _, n in people)
    val = read_pairs(lfw_lists / "view1_val_pairs.csv")
    assert len(val) == 1000 and val.labels.sum() == 500
    val_ids = {p.split("/")[0] for p in val.path1 + val.path2}
    assert not val_ids & set(train.identities)  # View 1 is identity-disjoint


def test_view2_folds(lfw_lists):
    pairs = read_pairs(lfw_lists / "view2_pairs.csv")
    assert len(pairs) == 6000 and sorted(set(pairs.folds.tolist())) == list(range(1, 11))
    fold1 = pairs.folds == 1
    assert pairs.labels[fold1].sum() == 300 and fold1.sum() == 600
    train = read_train_list(lfw_lists / "view2_train_fold01.txt")
    fold1_ids = {p.split("/")[0] for i, (a, b) in enumerate(zip(pairs.path1, pairs.path2)) if fold1[i] for p in (a, b)}
    assert not fold1_ids & set(train.identities)


def test_pairs_file_parsing_first_lines(lfw_dir):
    layout = lfw.find(lfw_dir.parent)
    labels, p1, p2, folds = lfw.read_pairs_file(lfw_dir / "pairsDevTest.txt", layout)
    first = (lfw_dir / "pairsDevTest.txt").read_text().splitlines()[1].split("\t")
    assert labels[0] == 1 and p1[0] == f"{first[0]}/{first[0]}_{int(first[1]):04d}.jpg"
    assert p2[0] == f"{first[0]}/{first[0]}_{int(first[2]):04d}.jpg"
    assert labels[-1] == 0 and set(folds) == {1}


def test_missing_lfw_is_clear(tmp_path):
    from facerec.errors import FacerecError

    with pytest.raises(FacerecError, match="LFW images not found"):
        lfw.find(tmp_path)
    assert main(["lists", "lfw", "--data-root", str(tmp_path / "nowhere")]) == 1


def test_scikit_learn_layout_without_people_files(tmp_path, lfw_dir):
    """`facerec data fetch lfw` leaves lfw_home/lfw_funneled + pairs*.txt (no people*.txt):
    View 1's train identities are then everyone not in pairsDevTest."""
    home = tmp_path / "lfw_home"
    (home / "lfw_funneled").mkdir(parents=True)
    names = ["Aaron_Eckhart", "Abdullah_Gul", "Al_Pacino", "Alan_Greenspan", "Adam_Sandler", "Aaron_Peirsol"]
    for n in names:
        (home / "lfw_funneled" / n).symlink_to(lfw_dir / "images_deepfunneled" / n)
    (home / "pairsDevTest.txt").write_text("2\nAbdullah_Gul\t1\t2\nAl_Pacino\t1\t2\n"
                                           "Abdullah_Gul\t1\tAl_Pacino\t1\nAl_Pacino\t2\tAlan_Greenspan\t1\n")
    written = lfw.write_lists(tmp_path, tmp_path / "out")
    assert {w.name for w in written} >= {"view1_train.txt", "view1_val_pairs.csv"}
    train = read_train_list(tmp_path / "out" / "view1_train.txt")
    assert set(train.classes) == {"Aaron_Eckhart", "Adam_Sandler", "Aaron_Peirsol"}
    val = read_pairs(tmp_path / "out" / "view1_val_pairs.csv")
    assert val.labels.tolist() == [1, 1, 0, 0]


def test_data_fetch_orl_writes_the_orl_layout(tmp_path, monkeypatch):
    """scikit-learn's downloader is replaced by its answer's shape (the network is not reached here)."""
    import numpy as np
    import sklearn.datasets
    from sklearn.utils import Bunch

    from facerec.data.lists import load_train

    rng = np.random.default_rng(0)
    target = np.repeat(np.arange(40), 10)
    fake = Bunch(images=rng.random((400, 64, 64)).astype(np.float32), target=target)
    monkeypatch.setattr(sklearn.datasets, "fetch_olivetti_faces", lambda **kw: fake)
    assert main(["data", "fetch", "orl", "--data-root", str(tmp_path)]) == 0
    t = load_train(tmp_path / "orl")
    assert t.num_classes == 40 and len(t) == 400 and t.paths[0] == "s1/1.pgm"
    from PIL import Image

    with Image.open(tmp_path / "orl" / "s40" / "10.pgm") as img:
        assert img.size == (64, 64) and img.mode == "L"
        assert np.array_equal(np.asarray(img), np.rint(fake.images[399] * 255).astype(np.uint8))
    assert main(["lists", "orl", "--data-root", str(tmp_path), "--out", str(tmp_path / "lists")]) == 0
