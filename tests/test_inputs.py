"""Inputs as users hand them over: unreadable files, spreadsheet lists, names with spaces, unusual
image modes, thresholds the validation pairs cannot measure, and open-set identification.

Each case asserts the exact outcome on real faces (ORL, an LFW image); unusual modes are made from
those faces and checked against independent numpy arithmetic on the raw arrays.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facerec.cli import main
from facerec.data import leakage
from facerec.data.decode import MIN_SIDE, geometry_note, load_faces, to_rgb
from facerec.data.lists import read_pairs, read_train_list, scan_identity_folder, write_train_list
from facerec.data.transforms import Preprocess, crop_resize
from facerec.errors import DataError

TINY = ["--model", "resnet18", "--input-size", "32", "--embedding-dim", "32", "--batch-classes", "10",
        "--per-class", "2", "--workers", "0", "--epochs", "1", "--max-steps", "2", "--loss", "softmax", "--no-progress"]
PRE = Preprocess(input_size=32)


def cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    got = capsys.readouterr()
    return rc, got.out, got.err


def usage_error(capsys, *argv) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    return exc.value.code, capsys.readouterr().err


def people(tmp_path: Path, orl_dir: Path, names=("s1", "s2", "s3", "s4"), sub: str = "ids") -> Path:
    root = tmp_path / sub
    for i, name in enumerate(names, 1):
        shutil.copytree(orl_dir / f"s{i}", root / name)
    return root


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, orl_lists):
    run = tmp_path_factory.mktemp("inputs_run") / "run"
    assert main(["train", *TINY, "--train", str(orl_lists / "orl_train.txt"), "--val",
                 str(orl_lists / "orl_val_pairs.csv"), "--run-dir", str(run)]) == 0
    return run / "best.pt"


# --- 1. an unreadable image: one message from every step ------------------------------------------
@pytest.fixture
def unreadable(monkeypatch):
    """Make one file unreadable. As a normal user that is chmod 000; tests usually run as root, who
    reads a chmod 000 file anyway, so there every Python-level open of that path fails with EACCES
    instead, which is what the kernel answers a normal user (the code opens images only through
    Python's open, so the monkeypatch reaches every step)."""
    made = []

    def make(path: Path) -> Path:
        if os.geteuid() != 0:
            path.chmod(0)
            made.append(path)
            return path
        real_open = builtins.open

        def refusing_open(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and os.fspath(file) == str(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", refusing_open)
        return path

    yield make
    for p in made:
        p.chmod(0o644)


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0].split("error: ", 1)[1]


def test_an_unreadable_image_gives_one_message_everywhere(capsys, tmp_path, orl_dir, ckpt, unreadable):
    root = people(tmp_path, orl_dir)
    victim = unreadable(root / "s2" / "3.pgm")
    expected = f"{victim}: cannot read image (permission denied)"
    seen = []

    # leakage hashing (the train list is read and stat'ed first: stat needs no read permission)
    val = tmp_path / "val.csv"
    val.write_text(f"# root: {orl_dir}\n1,s9/1.pgm,s9/2.pgm\n0,s9/1.pgm,s10/1.pgm\n")
    with pytest.raises(DataError) as exc:
        leakage.check(scan_identity_folder(root), read_pairs(val))
    seen.append(str(exc.value))
    rc, _, err = cli(capsys, "check-leakage", root, val)
    assert rc == 1
    seen.append(one_error_line(err))
    # decoding
    with pytest.raises(DataError) as exc:
        load_faces([str(root / "s1" / "1.pgm"), str(victim)], PRE)
    seen.append(str(exc.value))
    # embed, verify, identify
    rc, _, err = cli(capsys, "embed", root / "s2", "--checkpoint", ckpt, "--output", tmp_path / "e.npz", "--workers", 0,
                     "--no-progress")
    assert rc == 1
    seen.append(one_error_line(err))
    rc, _, err = cli(capsys, "verify", victim, root / "s2" / "4.pgm", "--checkpoint", ckpt)
    assert rc == 2  # verify's "could not tell"
    seen.append(one_error_line(err))
    rc, _, err = cli(capsys, "identify", "--gallery", root, "--probe", root, "--checkpoint", ckpt, "--workers", 0)
    assert rc == 1
    seen.append(one_error_line(err))
    assert seen == [expected] * len(seen)


def test_a_directory_or_a_dangling_link_with_an_image_name(capsys, tmp_path, orl_dir, ckpt):
    root = people(tmp_path, orl_dir)
    (root / "s3" / "99.pgm").mkdir()  # real failures, no monkeypatching: these fail for root too
    (root / "s4" / "98.pgm").symlink_to(tmp_path / "gone.pgm")
    with pytest.raises(DataError) as exc:
        load_faces([str(root / "s3" / "99.pgm")], PRE)
    assert str(exc.value) == f"{root / 's3' / '99.pgm'}: cannot read image (is a directory)"
    with pytest.raises(DataError) as exc:
        load_faces([str(root / "s4" / "98.pgm")], PRE)
    assert str(exc.value) == f"{root / 's4' / '98.pgm'}: cannot read image (no such file or directory)"
    val = tmp_path / "val.csv"
    val.write_text(f"# root: {orl_dir}\n1,s9/1.pgm,s9/2.pgm\n0,s9/1.pgm,s10/1.pgm\n")
    rc, _, err = cli(capsys, "check-leakage", root, val)  # the link fails the stat before any directory is read
    assert rc == 1 and one_error_line(err) == f"{root / 's4' / '98.pgm'}: cannot read image (no such file or directory)"
    rc, _, err = cli(capsys, "identify", "--gallery", root, "--probe", root, "--checkpoint", ckpt, "--workers", 0)
    assert rc == 1 and one_error_line(err).startswith(f"{root / 's3' / '99.pgm'}: ")  # a folder to the image API
    lst = tmp_path / "train.txt"  # a train list names both up front, with the line
    lst.write_text(f"# root: {root}\ns1 s1/1.pgm\ns3 s3/99.pgm\ns4 s4/98.pgm\n")
    with pytest.raises(DataError) as exc:
        read_train_list(lst)
    assert f"{lst}:3: not an image file" in str(exc.value) and f"{lst}:4: image not found" in str(exc.value)


# --- 2. a pair CSV with a header row --------------------------------------------------------------
def _eval(pairs, *extra):
    return ["eval", "--model", "resnet18", "--input-size", "32", "--embedding-dim", "16", "--pairs", pairs,
            "--workers", "0", "--no-progress", *extra]


def test_a_header_row_is_skipped_and_said_once(capsys, tmp_path, orl_dir):
    p = tmp_path / "val.csv"
    p.write_text("label,path1,path2\n1,s1/1.pgm,s1/2.pgm\n0,s1/1.pgm,s2/1.pgm\n1,s2/1.pgm,s2/2.pgm\n")
    rc, out, err = cli(capsys, *_eval(p, "--root", orl_dir, "--json"))
    assert rc == 0 and json.loads(out)["n_pairs"] == 3 and json.loads(out)["n_positive"] == 2
    assert err.count("note:") == 1 and f"{p}:1: first line 'label,path1,path2'" in err and "header row" in err
    test = tmp_path / "test.csv"  # a test list's header, with a fold column or without labels
    test.write_text("image1,image2\ns1/1.pgm,s1/2.pgm\ns1/1.pgm,s2/1.pgm\n")
    assert len(read_pairs(test, orl_dir, allow_unknown=True)) == 2
    folds = tmp_path / "folds.csv"
    folds.write_text('"label","path1","path2","fold"\n1,s1/1.pgm,s1/2.pgm,1\n0,s1/1.pgm,s2/1.pgm,1\n')
    assert read_pairs(folds, orl_dir).folds.tolist() == [1, 1]


def test_a_first_line_naming_real_images_is_never_a_header(capsys, tmp_path, orl_dir):
    p = tmp_path / "val.csv"
    p.write_text("yes,s1/1.pgm,s1/2.pgm\n0,s1/1.pgm,s2/1.pgm\n")
    rc, _, err = cli(capsys, *_eval(p, "--root", orl_dir))
    assert rc == 1 and f"{p}:1: label must be 0 or 1, got 'yes'" in err and "header" not in err
    bad = tmp_path / "bad.csv"  # a header and then a missing image: only the image is a problem
    bad.write_text("label,path1,path2\n1,s1/1.pgm,s1/99.pgm\n")
    with pytest.raises(DataError) as exc:
        read_pairs(bad, orl_dir)
    assert "1 problem(s)" in str(exc.value) and f"{bad}:2: image not found" in str(exc.value)


# --- 3. train lists with spaces in names ------------------------------------------------------------
NAMES = ("John Smith", "José Ñúñez", "plain", "O'Brien, Pat")


def test_train_list_forms_with_spaces(tmp_path, orl_dir):
    root = people(tmp_path, orl_dir, NAMES)
    rows = [(who, f"{who}/{j}.pgm") for who in NAMES for j in (1, 2)]
    expected = sorted(rows)

    def read(name, text):
        f = tmp_path / name
        f.write_text(f"# root: {root}\n{text}", encoding="utf-8")
        t = read_train_list(f)
        return sorted(zip(t.identities, t.paths))

    tab = "".join(f"{who}\t{rel}\n" for who, rel in rows)
    assert read("tab.txt", tab) == expected
    assert read("tab.tsv", tab) == expected
    quoted = "".join('"{}","{}"\n'.format(*r) for r in rows)
    assert read("quoted.txt", quoted) == expected  # a line starting with a quote is a CSV line
    assert read("quoted_space.txt", "".join('"{}" "{}"\n'.format(*r) for r in rows)) == expected
    assert read("sheet.csv", "identity,path\n" + quoted) == expected  # a spreadsheet's header is skipped
    plain = tmp_path / "plain.txt"  # face_trainer's form is unchanged
    plain.write_text(f"# root: {orl_dir}\ns1 s1/1.pgm\ns2  s2/1.pgm\r\n")
    assert sorted(zip(read_train_list(plain).identities, read_train_list(plain).paths)) == [("s1", "s1/1.pgm"),
                                                                                             ("s2", "s2/1.pgm")]
    out = tmp_path / "written.txt"  # what the tools write reads back, names with spaces included
    write_train_list(out, root, [r for _, r in rows], [w for w, _ in rows])
    t = read_train_list(out)
    assert sorted(zip(t.identities, t.paths)) == expected and "plain plain/1.pgm\n" in out.read_text()


def test_split_and_embed_lists_with_spaces(capsys, tmp_path, orl_dir):
    root = people(tmp_path, orl_dir, ("John Smith", "Ann Lee", "Bo", "Cy Young", "Di"))
    rc, _, err = cli(capsys, "split", root, "--out", tmp_path / "lists", "--val-fraction", "0.4")
    assert rc == 0, err
    train = next((tmp_path / "lists").glob("*_train.txt"))
    t = read_train_list(train)
    assert len(t) and all((root / p).is_file() for p in t.paths)
    from facerec.inference.images import list_file_images

    lst = tmp_path / "photos.txt"
    lst.write_text(f"# root: {root}\nJohn Smith/1.pgm\nAnn Lee\tAnn Lee/2.pgm\nBo Bo/3.pgm\n")
    assert list_file_images(lst) == [str(root / "John Smith/1.pgm"), str(root / "Ann Lee/2.pgm"), str(root / "Bo/3.pgm")]
    sheet = tmp_path / "photos.csv"  # a spreadsheet: header row, quoted names with spaces
    sheet.write_text(f'# root: {root}\nidentity,path\n"John Smith","John Smith/1.pgm"\nBo,Bo/2.pgm\n')
    assert list_file_images(sheet) == [str(root / "John Smith/1.pgm"), str(root / "Bo/2.pgm")]
    assert "photos.csv:2: first line 'identity,path' names no image" in capsys.readouterr().err


# --- 4/5. unusual modes and small images: decoded as a viewer shows them, and said once ------------
def _png16_rgb(path: Path, rgb16: np.ndarray) -> None:
    """A 16-bit RGB PNG written by hand (Pillow cannot write one)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\0" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _rgb(a: np.ndarray) -> torch.Tensor:
    assert a.min() >= 0 and a.max() <= 255
    a = a.astype(np.uint8)
    a = np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)


@pytest.fixture(scope="module")
def faces(orl_dir, lfw_dir):
    grey = np.asarray(Image.open(orl_dir / "s5" / "1.pgm"))
    colour = np.asarray(Image.open(lfw_dir / "images_deepfunneled" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"))
    return grey, colour


def unusual_files(d: Path, grey: np.ndarray, colour: np.ndarray) -> dict[str, np.ndarray]:
    """Each file and the pixels a viewer shows for it, computed with numpy from the raw data."""
    rng = np.random.default_rng(0)
    d.mkdir(parents=True, exist_ok=True)
    want = {}
    g16 = grey.astype(np.uint16) * 256 + rng.integers(0, 256, grey.shape).astype(np.uint16)
    Image.fromarray(g16).save(d / "grey16.png")  # Pillow reads it as I;16; convert("RGB") would clip it to white
    want["grey16.png"] = g16 >> 8
    Image.fromarray(g16).save(d / "grey16.pgm")  # maxval 65535; Pillow reads it as I
    want["grey16.pgm"] = g16 >> 8
    c16 = colour.astype(np.uint16) * 256 + rng.integers(0, 256, colour.shape).astype(np.uint16)
    _png16_rgb(d / "rgb16.png", c16)
    want["rgb16.png"] = c16 >> 8
    alpha = rng.integers(0, 256, colour.shape[:2]).astype(np.uint8)
    Image.fromarray(np.dstack([colour, alpha])).save(d / "rgba.png")
    want["rgba.png"] = colour  # alpha dropped: the colour channels as they are
    Image.fromarray(np.dstack([grey, alpha[: grey.shape[0], : grey.shape[1]]])).save(d / "la.png")  # LA
    want["la.png"] = grey
    pal = Image.fromarray(colour).quantize(32, dither=Image.Dither.NONE)
    pal.save(d / "palette.png")
    pal.save(d / "palette_t.png", transparency=3)
    lut = np.array(pal.getpalette(), np.uint8).reshape(-1, 3)
    want["palette.png"] = want["palette_t.png"] = lut[np.asarray(pal)]
    bw = grey > 128
    Image.fromarray(bw).save(d / "bw.png")
    want["bw.png"] = bw.astype(np.uint8) * 255
    Image.fromarray(colour).convert("CMYK").save(d / "cmyk.jpg", quality=95)
    with Image.open(d / "cmyk.jpg") as im:  # Pillow's conversion, checked against its formula below
        cmyk = np.asarray(im).astype(np.int32)
    nk = 255 - cmyk[..., 3:]
    t = cmyk[..., :3] * nk + 128
    want["cmyk.jpg"] = np.clip(nk - (((t >> 8) + t) >> 8), 0, 255).astype(np.uint8)
    return want


def test_every_mode_decodes_as_a_viewer_shows_it(tmp_path, faces):
    grey, colour = faces
    want = unusual_files(tmp_path / "modes", grey, colour)
    for name, pixels in want.items():
        path = str(tmp_path / "modes" / name)
        with Image.open(path) as im:
            decoded = to_rgb(im)
        assert torch.equal(decoded, _rgb(pixels)), name
        # the whole path (file -> crop -> resize), JPEG fast path or PIL, equals the face of those pixels
        assert torch.equal(load_faces([path], PRE)[0], crop_resize(_rgb(pixels), PRE)), name
    assert (load_faces([str(tmp_path / "modes" / "grey16.png")], PRE) < 255).any()  # not the old all-white
    # in-memory images: PIL modes I and F, and uint16 / RGBA arrays
    from facerec.inference.images import faces as image_faces

    g16 = grey.astype(np.uint16) * 257
    items = [Image.fromarray(g16.astype(np.int32)), Image.fromarray(grey.astype(np.float32) / 255),
             Image.fromarray(grey.astype(np.float32)), g16, np.dstack([colour, colour[..., :1]])]
    expected = [g16 >> 8, grey, grey, g16 >> 8, colour]
    got = image_faces(items, PRE)
    for i, pixels in enumerate(expected):
        assert torch.equal(got[i], crop_resize(_rgb(pixels.astype(np.uint8)), PRE)), i


def test_small_and_unusual_images_are_noted_once(capsys, tmp_path, orl_dir, faces, ckpt):
    grey, colour = faces
    root = people(tmp_path, orl_dir, ("s1",))
    unusual_files(root / "s1", grey, colour)
    Image.fromarray(grey).resize((20, 24)).save(root / "s1" / "tiny.png")
    n = len(list((root / "s1").iterdir()))
    odd = sum(Image.open(f).mode not in ("L", "RGB") for f in (root / "s1").iterdir())  # 16-bit RGB opens as RGB
    assert odd == 8
    rc, _, err = cli(capsys, "embed", root, "--checkpoint", ckpt, "--output", tmp_path / "e.npz", "--chunk", 5,
                     "--workers", 0, "--no-progress")
    assert rc == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    small = [line for line in notes if f"smaller than {MIN_SIDE} px" in line]
    modes = [line for line in notes if "not 8-bit grey or RGB" in line]
    assert len(small) == 1 and f"1 of {n} images" in small[0] and "tiny.png: 20x24" in small[0]
    assert len(modes) == 1 and f"{odd} of {n} images" in modes[0] and "I;16: 1" in modes[0] and "CMYK: 1" in modes[0]
    assert "e.g. " + str(root / "s1") in modes[0]
    rc, _, err = cli(capsys, "verify", root / "s1" / "1.pgm", root / "s1" / "2.pgm", "--checkpoint", ckpt)
    assert rc in (0, 1) and "note:" not in err  # ordinary 8-bit images: nothing to say
    # training: the same notes from the sample of headers it reads anyway (the trainer logs each line)
    t = scan_identity_folder(root)
    note = geometry_note(t.root, t.paths, PRE)
    assert note.startswith("images come in 3 sizes") and note.count("\nnote: ") == 2
    assert f"1 of {n} images are smaller than {MIN_SIDE} px" in note and f"{odd} of {n} images are not 8-bit" in note


# --- 6. thresholds are never inf; an image always matches itself -------------------------------------
def _adverse_checkpoint(ckpt: Path, out: Path, n_neg: int = 500) -> Path:
    """The run's checkpoint with validation scores whose highest-scoring pair is a different one: the
    lowest threshold with FAR <= 1e-3 was +inf."""
    c = torch.load(ckpt, weights_only=True)
    rng = np.random.default_rng(0)
    neg = np.r_[0.97, rng.uniform(-0.2, 0.6, n_neg - 1)]
    pos = rng.uniform(0.3, 0.95, 500)
    c["val_scores"] = {"scores": np.r_[pos, neg].tolist(), "labels": [1] * 500 + [0] * n_neg}
    torch.save(c, out)
    return out


def test_far_thresholds_never_inf():
    from facerec.evaluation import metrics

    s, y = [0.9, 0.8, 0.3, 0.2], [0, 1, 1, 0]
    assert metrics.far_threshold(s, y, 0.5) == (0.3, None)  # measurable: one false accept of two allowed
    t, note = metrics.far_threshold(s, y, 1e-3)
    assert t == 0.9 and "highest different-pair score, 0.9000" in note and "1/2 = 0.5" in note
    t, note = metrics.far_threshold([0.9, 0.8, 0.3, 0.2], [1, 0, 1, 0], 1e-3)
    assert t == 0.9 and "lowest score above every one of them" in note
    t, note = metrics.far_threshold([0.7, 0.7, 0.7, 0.1], [1, 0, 0, 0], 0.34)
    assert t == 0.7 and "tie at the top" in note
    m = metrics.compute_all(s, y)
    assert all(np.isfinite(m[f"tar_far_{f}_threshold"]) for f in ("1e-1", "1e-2", "1e-3"))


def test_verify_far_that_the_pairs_cannot_measure(capsys, tmp_path, ckpt, orl_dir):
    import facerec

    adverse = _adverse_checkpoint(ckpt, tmp_path / "adverse.pt")
    img = orl_dir / "s7" / "1.pgm"
    rc, out, err = cli(capsys, "verify", img, img, "--checkpoint", adverse, "--far", "1e-3")
    assert rc == 0 and out.startswith("SAME  score 1.0000  threshold 0.9700"), out + err
    assert err.count("note:") == 1 and "highest different-pair score, 0.9700" in err and "1/500 = 0.002" in err
    m = facerec.load(adverse, device="cpu")
    assert m.threshold(far=1e-3) == pytest.approx(0.97)  # the API says it too, through logging
    assert "highest different-pair score, 0.9700" in capsys.readouterr().err
    v = m.verify(str(img), str(img), far=1e-4)
    assert v.same and v.score == 1.0 and np.isfinite(v.threshold)
    # stored thresholds only (an ONNX export's metadata): an old +inf is refused, naming what it holds
    m.val_scores = None
    m.thresholds = {"eer": 0.3, "1e-1": 0.5, "1e-2": 0.8, "1e-3": float("inf")}
    with pytest.raises(DataError, match=r"FAR=0.001 is not a number .* the smallest FAR it holds is 1e-2"):
        m.threshold(far=1e-3)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1.5"])
def test_verify_threshold_must_be_a_finite_cosine(capsys, tmp_path, ckpt, orl_dir, value):
    img = orl_dir / "s7" / "1.pgm"
    import facerec
    from facerec.errors import FacerecError

    if value == "1.5":  # finite: a back-end's threshold may be, so the model (no back-end here) refuses it
        rc, out, err = cli(capsys, "verify", img, img, "--checkpoint", ckpt, f"--threshold={value}")
        assert rc == 2 and not out and one_error_line(err).startswith("threshold must be a finite cosine in [-1, 1]")
    else:
        code, err = usage_error(capsys, "verify", img, img, "--checkpoint", ckpt, f"--threshold={value}")
        assert code == 2 and "usage:" in err and "--threshold" in err and "a finite number" in err
    with pytest.raises(FacerecError, match="threshold must be a finite cosine"):
        facerec.load(ckpt, device="cpu").verify(str(img), str(img), threshold=float(value))


def test_embed_refuses_a_zero_vector(tmp_path, ckpt, orl_dir):
    import facerec

    m = facerec.load(ckpt, device="cpu")
    for p in m.net.parameters():  # a collapsed network: every output exactly zero
        torch.nn.init.zeros_(p)
    img = str(orl_dir / "s7" / "1.pgm")
    with pytest.raises(DataError, match=rf"^{img}: the network's embedding is zero \(1 of 1 image\(s\)\)"):
        m.embed(img, workers=0)


def test_exported_thresholds_follow_the_rule_and_say_so(tmp_path, ckpt, orl_dir, caplog):
    import facerec
    from facerec.inference.export import metadata
    from facerec.inference.facemodel import OnnxFaceModel

    m = facerec.load(_adverse_checkpoint(ckpt, tmp_path / "adverse.pt"), device="cpu")
    m.thresholds = {**m.thresholds, "1e-3": float("inf")}  # as an older run stored it
    meta = json.loads(json.dumps(metadata(m), allow_nan=False))  # plain JSON: no Infinity
    assert meta["thresholds"]["1e-3"] == pytest.approx(0.97) and meta["val_pairs"] == {"same": 500, "different": 500}
    onnx_like = OnnxFaceModel(tmp_path / "m.onnx", session=type("S", (), {"get_inputs": lambda self: [
        type("I", (), {"name": "input"})()]})(), meta=meta)
    caplog.clear()
    assert onnx_like.threshold(far=1e-3) == pytest.approx(0.97)
    assert "0.5 false accept(s) of 500 different validation pairs" in caplog.text and "1/500" in caplog.text
    caplog.clear()
    onnx_like.threshold(far=1e-2)
    assert "false accept" not in caplog.text  # 5 of 500: measured


# --- 7. identify marks matches below the model's threshold unknown ------------------------------------
def test_identify_marks_weak_matches_unknown(capsys, tmp_path, orl_dir, ckpt):
    import csv

    import facerec

    gallery = tmp_path / "gallery"
    for who in ("s11", "s12", "s13"):
        shutil.copytree(orl_dir / who, gallery / who, ignore=shutil.ignore_patterns("9.pgm"))  # probes are not in it
    probes = tmp_path / "probes"
    probes.mkdir()
    for src in ("s11/9.pgm", "s12/9.pgm", "s30/1.pgm", "s31/1.pgm"):  # two of them are in no gallery
        shutil.copy(orl_dir / src, probes / src.replace("/", "_"))
    thr = facerec.load(ckpt, device="cpu").threshold()
    rc, out, _ = cli(capsys, "identify", "--gallery", gallery, "--probe", probes, "--checkpoint", ckpt, "--json",
                     "--workers", 0)
    r = json.loads(out)
    assert rc == 0 and r["threshold"] == pytest.approx(thr) and r["threshold_from"] == "the model's EER threshold"
    assert [m["unknown"] for m in r["matches"]] == [m["top"][0][1] < thr for m in r["matches"]]
    assert r["unknown"] == sum(m["unknown"] for m in r["matches"])
    # a given threshold above every score: every probe is unknown, in the CSV and the summary too
    csv_out = tmp_path / "m.csv"
    rc, out, _ = cli(capsys, "identify", "--gallery", gallery, "--probe", probes, "--checkpoint", ckpt,
                     "--threshold", "1", "--output", csv_out, "--workers", 0)
    assert rc == 0 and "unknown: 4 of 4 probes score below 1.0000 (given)" in out
    rows = list(csv.DictReader(csv_out.open()))
    assert {r["decision"] for r in rows} == {"unknown"} and len(rows) == 4 * 3
    rc, out, _ = cli(capsys, "identify", "--gallery", gallery, "--probe", probes, "--checkpoint", ckpt,
                     "--threshold", "-1", "--workers", 0)
    assert rc == 0 and "unknown: 0 of 4" in out and "unknown (below" not in out
    code, _ = usage_error(capsys, "identify", "--gallery", gallery, "--probe", probes, "--checkpoint", ckpt,
                          "--threshold", "nan")
    assert code == 2
