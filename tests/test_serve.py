"""`facerec serve` on real faces: the API's answers against the library's and `facerec identify`'s,
the gallery against a brute-force search, persistence, and every refusal (4xx, nothing written)."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

import facerec
from facerec.cli import build_parser, main
from facerec.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--model", "resnet18", "--input-size", "32", "--embedding-dim", "32", "--batch-classes", "10",
         "--workers", "0", "--no-progress"]


def trained_checkpoint(tmp_path_factory, orl_dir) -> Path:
    """A small model trained on ORL (with validation thresholds), shared by the serve test modules."""
    work = tmp_path_factory.getbasetemp() / "serve-model"
    ckpt = work / "run" / "best.pt"
    if not ckpt.exists():
        work.mkdir(exist_ok=True)
        assert main(["lists", "orl", "--data-root", str(orl_dir.parent), "--out", str(work)]) == 0
        assert main(["-q", "train", "--train", str(work / "orl_train.txt"), "--val", str(work / "orl_val_pairs.csv"),
                     *SMALL, "--epochs", "2", "--tta", "--run-dir", str(work / "run")]) == 0
    return ckpt


def lfw_people(lfw_dir: Path, n: int, per: int = 3) -> dict[str, list[Path]]:
    """The first n LFW people (by name) with two or more images, up to `per` images each."""
    root = lfw_dir / "images_deepfunneled"
    out = {}
    for d in sorted(root.iterdir()):
        imgs = sorted(d.glob("*.jpg"))
        if len(imgs) >= 2:
            out[d.name] = imgs[:per]
            if len(out) == n:
                break
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_args(ckpt, gallery, *extra):
    return build_parser().parse_args(["serve", "--model", str(ckpt), "--gallery", str(gallery), "--device", "cpu",
                                      *extra])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, orl_dir):
    return trained_checkpoint(tmp_path_factory, orl_dir)


@pytest.fixture(scope="module")
def model(ckpt):
    return facerec.load(ckpt, device="cpu")


@pytest.fixture
def service(ckpt, tmp_path):
    from fastapi.testclient import TestClient

    from facerec.commands.serve import open_service

    opened = []

    def start(*extra, gallery=None, model=None):
        app, gallery = open_service(serve_args(model or ckpt, gallery or tmp_path / "g.db", *extra))
        opened.append(gallery)
        return TestClient(app), gallery

    yield start
    for g in opened:
        g.close()


def files(field, paths):
    return [(field, (Path(p).name, Path(p).read_bytes(), "image/jpeg")) for p in paths]


def test_embed_and_verify_equal_the_library(service, model, lfw_dir):
    client, _ = service()
    people = lfw_people(lfw_dir, 2)
    (a1, a2, *_), (b1, *_) = people.values()
    r = client.post("/embed", files=files("images", [a1, a2, b1]))
    assert r.status_code == 200, r.text
    want = model.embed([str(a1), str(a2), str(b1)])
    assert np.allclose(np.array(r.json()["embeddings"]), want, atol=1e-6)
    for x, y in ((a1, a2), (a1, b1)):
        r = client.post("/verify", files=[*files("a", [x]), *files("b", [y])]).json()
        v = model.verify(str(x), str(y))
        assert r["score"] == pytest.approx(v.score, abs=1e-6) and r["threshold"] == v.threshold
        assert r["same"] == v.same and r["threshold_rule"] == "eer"
        r = client.post("/verify", files=[*files("a", [x]), *files("b", [y])], data={"far": "0.1"}).json()
        assert r["threshold"] == model.threshold(far=0.1) and r["threshold_rule"] == "far=0.1"
    info = client.get("/model").json()
    assert info["embedding_dim"] == 32 and info["preprocessing"]["input_size"] == 32 and len(info["sha256"]) == 64
    assert info["thresholds"]["eer"] == pytest.approx(model.threshold())


def test_identify_rank1_equals_facerec_identify_on_lfw(service, ckpt, lfw_dir, tmp_path, capsys):
    people = lfw_people(lfw_dir, 12)
    gallery, probe = tmp_path / "gallery", tmp_path / "probe"
    for name, imgs in people.items():  # one image each in the gallery, the rest are probes
        for d, group in ((gallery, imgs[:1]), (probe, imgs[1:])):
            (d / name).mkdir(parents=True)
            for img in group:
                (d / name / img.name).symlink_to(img)
    assert main(["identify", "--gallery", str(gallery), "--probe", str(probe), "--checkpoint", str(ckpt),
                 "--json", "--no-progress", "--top-k", "3", "--device", "cpu"]) == 0
    want = json.loads(capsys.readouterr().out)
    client, _ = service()
    for name, imgs in people.items():
        r = client.post("/people", data={"person": name}, files=files("images", imgs[:1]))
        assert r.status_code == 201, r.text
    hits, n = 0, 0
    for m in want["matches"]:
        r = client.post("/identify", files=files("image", [m["probe"]]), data={"top_k": "3"}).json()
        assert [x["person"] for x in r["matches"]] == [p for p, _ in m["top"]]
        assert [x["score"] for x in r["matches"]] == pytest.approx([s for _, s in m["top"]], abs=1e-5)
        assert r["unknown"] == m["unknown"] and r["threshold"] == pytest.approx(want["threshold"])
        hits += r["matches"][0]["person"] == m["truth"]
        n += 1
    assert 100 * hits / n == pytest.approx(want["rank1"])


@pytest.mark.parametrize("kind", ["exact", "ivf"])
def test_gallery_search_equals_brute_force(tmp_path, kind):
    from facerec.serve.gallery import Gallery

    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(3000, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    g = Gallery(tmp_path / "g.db", dim=32, model_checksum="0" * 64, index=kind)
    try:
        g.add_embeddings([f"p{i:05d}" for i in range(len(vecs))], vecs)
        assert g.ivf == (kind == "ivf")
        queries = vecs[:200] + 0.3 * rng.normal(size=(200, 32)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        got = g.search(queries, 5)
        want = np.argsort(-(queries @ vecs.T), axis=1, kind="stable")[:, :5]
        top1 = np.mean([r[0][0] == f"p{w[0]:05d}" for r, w in zip(got, want)])
        if kind == "exact":
            assert [[p for p, _ in r] for r in got] == [[f"p{i:05d}" for i in w] for w in want]
            assert np.allclose([[s for _, s in r] for r in got], np.take_along_axis(queries @ vecs.T, want, 1), atol=1e-5)
        else:
            # approximate: on uniformly random vectors (IVF's hardest case) most true bests are found at the
            # default nprobe, and every list visited gives the exact answer
            assert top1 >= 0.75
            g.index.nprobe = g.index.nlist
            assert [[p for p, _ in r] for r in g.search(queries, 5)] == [[f"p{i:05d}" for i in w] for w in want]
    finally:
        g.close()


def test_gallery_persists_refuses_another_model_and_reembeds(service, ckpt, lfw_dir, tmp_path):
    people = lfw_people(lfw_dir, 3)
    client, gallery = service()
    for name, imgs in people.items():
        assert client.post("/people", data={"person": name}, files=files("images", imgs[:2])).status_code == 201
    probe = next(iter(people.values()))[2]
    r = client.post(f"/people/{next(iter(people))}/images", files=files("images", [probe]))
    assert r.status_code == 200 and r.json()["added"] == 1 and r.json()["images"] == 3
    assert client.delete(f"/people/{list(people)[1]}").json() == {"person": list(people)[1], "deleted_images": 2}
    gallery.close()
    client, gallery = service()  # a new process would see the same: the index is rebuilt from SQLite
    listed = client.get("/people").json()
    assert listed["total"] == 2 and [p["images"] for p in listed["people"]] == [3, 2]
    assert client.get(f"/people/{next(iter(people))}/thumbnail").content[:2] == b"\xff\xd8"
    other = lfw_people(lfw_dir, 4)[list(lfw_people(lfw_dir, 4))[3]][0]
    before = client.post("/identify", files=files("image", [other])).json()
    gallery.db.execute("UPDATE meta SET value = ? WHERE key = 'model_checksum'", ("f" * 64,))  # "another model"
    gallery.close()
    with pytest.raises(DataError, match="embedded by another model"):
        service()
    client, _ = service("--reembed")
    after = client.post("/identify", files=files("image", [other])).json()
    assert [m["person"] for m in after["matches"]] == [m["person"] for m in before["matches"]]
    assert [m["score"] for m in after["matches"]] == pytest.approx([m["score"] for m in before["matches"]], abs=1e-6)


def png_header(w: int, h: int) -> bytes:
    """A PNG claiming w x h pixels, with one tiny compressed row: decoding it would allocate w*h."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * (w + 1))) + chunk(b"IEND", b""))


def test_bad_input_is_a_one_line_4xx_and_writes_nothing(service, lfw_dir, tmp_path):
    people = lfw_people(lfw_dir, 2)
    (a, a2, *_), (b, *_) = people.values()
    client, gallery = service("--max-image-bytes", "200000", "--max-batch", "3")
    assert client.post("/people", data={"person": "Alice"}, files=files("images", [a])).status_code == 201
    jpeg = a.read_bytes()
    big = jpeg + b"\x00" * 200_001
    cases = [
        ("/identify", {}, [("image", ("x.jpg", big, "image/jpeg"))], 413, "size limit"),
        ("/identify", {}, [("image", ("x.png", png_header(30000, 30000), "image/png"))], 413, "pixels"),
        ("/identify", {}, [("image", ("x.png", png_header(8000, 6000), "image/png"))], 413, "pixels"),
        ("/identify", {}, [("image", ("x.jpg", b"not an image at all", "image/jpeg"))], 415, "not an image"),
        ("/identify", {}, [("image", ("x.jpg", jpeg[: len(jpeg) // 2], "image/jpeg"))], 415, "cannot decode"),
        ("/identify", {}, [("image", ("x.txt", jpeg, "text/plain"))], 415, "content type"),
        ("/identify", {}, [("image", ("x.jpg", b"", "image/jpeg"))], 400, "empty"),
        ("/identify", {"top_k": "0"}, files("image", [a]), 422, "top_k"),
        ("/verify", {"far": "2"}, files("a", [a]) + files("b", [b]), 400, "far"),
        ("/verify", {"far": "0.1", "threshold": "0.5"}, files("a", [a]) + files("b", [b]), 400, "not both"),
        ("/embed", {}, [], 400, "no image"),
        ("/embed", {}, files("images", [a, a, a, a]), 413, "limit is 3"),
        ("/people", {"person": "Bob"}, [], 400, "no image"),
        ("/people", {"person": "Bob"}, files("images", [a, b, b, a]), 413, "limit is 3"),
        ("/people", {"person": "../../etc/passwd"}, files("images", [b]), 400, "person id"),
        ("/people", {"person": "Alice"}, files("images", [b]), 409, "already enrolled"),
        ("/people", {"person": "Bob"}, files("images", [a2, a]), 409, "already enrolled as person 'Alice'"),
        ("/people", {"person": "Bob"}, files("images", [b]) + [("images", ("x", b"GIF89a", "image/gif"))], 415, ""),
        ("/people/Nobody/images", {}, files("images", [b]), 404, "not enrolled"),
    ]
    for url, data, upload, status, words in cases:
        r = client.post(url, data=data, files=upload) if upload else client.post(url, data=data)
        detail = r.json()["detail"]
        assert r.status_code == status and isinstance(detail, str) and "\n" not in detail, (url, words, r.text)
        assert words in detail, (url, detail)
    r = client.post("/verify", json={"a": "x"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    r = client.post("/embed", content=b"x" * (3 * 200_000 + 2**20 + 1), headers={"content-type": "multipart/form-data"})
    assert r.status_code == 413 and "request body" in r.json()["detail"]
    streamed = (b"x" * 2**16 for _ in range(32))  # no content-length: counted as it arrives
    r = client.post("/embed", content=streamed, headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "request body" in r.json()["detail"]
    assert client.delete("/people/Nobody").status_code == 404
    assert gallery.people_count() == 1 and gallery.image_count() == 1  # nothing written by any refusal
    assert [p["person"] for p in client.get("/people").json()["people"]] == ["Alice"]


def test_token_guards_writes(service, ckpt, lfw_dir, tmp_path):
    (a, *_), = lfw_people(lfw_dir, 1).values()
    token = tmp_path / "token"
    token.write_text("")
    token.chmod(0o600)
    with pytest.raises(DataError, match="16 characters"):
        service("--token-file", str(token))
    token.write_text("s3cret-token-0123456789\n")
    token.chmod(0o644)
    with pytest.raises(DataError, match="readable by others"):
        service("--token-file", str(token))
    token.chmod(0o600)
    client, gallery = service("--token-file", str(token))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token-0123456789"}):
        r = client.post("/people", data={"person": "A"}, files=files("images", [a]), headers=headers)
        assert r.status_code == 401 and "token" in r.json()["detail"]
        assert client.delete("/people/A", headers=headers).status_code == 401
    assert gallery.people_count() == 0
    ok = {"Authorization": "Bearer s3cret-token-0123456789"}
    assert client.post("/people", data={"person": "A"}, files=files("images", [a]), headers=ok).status_code == 201
    assert client.post("/identify", files=files("image", [a])).json()["best"] == "A"  # reads need no token
    assert client.delete("/people/A", headers=ok).status_code == 200
    assert main(["serve", "--model", str(ckpt), "--host", "0.0.0.0", "--gallery", str(tmp_path / "h.db")]) == 2


def test_concurrent_enrols_of_one_person(service, lfw_dir, monkeypatch):
    from facerec.inference.facemodel import FaceModel

    (a, a2, *_), (b, *_) = lfw_people(lfw_dir, 2).values()
    client, gallery = service()
    embedding, original = threading.Event(), FaceModel.embed

    def slow_embed(self, *args, **kw):  # the first enrol is still embedding when the second arrives
        embedding.set()
        time.sleep(0.5)
        return original(self, *args, **kw)

    monkeypatch.setattr(FaceModel, "embed", slow_embed)
    results = []

    def enrol(imgs):
        results.append(client.post("/people", data={"person": "Same"}, files=files("images", imgs)))

    first = threading.Thread(target=enrol, args=([a, a2],))
    first.start()
    assert embedding.wait(30)
    enrol([b])
    first.join()
    assert sorted(r.status_code for r in results) == [201, 409]
    assert "in progress" in next(r for r in results if r.status_code == 409).json()["detail"]
    assert gallery.people_count() == 1 and gallery.image_count() == 2


def test_kill_9_loses_no_acknowledged_enrol(ckpt, lfw_dir, tmp_path):
    import httpx

    imgs = [p for ps in lfw_people(lfw_dir, 30, per=1).values() for p in ps]
    db, port = tmp_path / "g.db", free_port()
    cmd = [sys.executable, "-m", "facerec", "serve", "--model", str(ckpt), "--gallery", str(db), "--port", str(port),
           "--device", "cpu", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    acknowledged = []
    try:
        url = f"http://127.0.0.1:{port}"
        wait_up(url, proc)

        def stream():
            with httpx.Client(base_url=url, timeout=30) as c:
                for i, p in enumerate(imgs):
                    try:
                        r = c.post("/people", data={"person": f"p{i:03d}"}, files=files("images", [p]))
                    except httpx.HTTPError:
                        return
                    if r.status_code == 201:
                        acknowledged.append(f"p{i:03d}")
        t = threading.Thread(target=stream)
        t.start()
        while len(acknowledged) < 10 and t.is_alive():
            time.sleep(0.01)
        proc.kill()  # SIGKILL mid-stream: no shutdown code runs
        t.join()
    finally:
        proc.kill()
        proc.wait()
    assert 10 <= len(acknowledged) < len(imgs)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_up(f"http://127.0.0.1:{port}", proc)
        listed = httpx.get(f"http://127.0.0.1:{port}/people", params={"limit": 1000}).json()
        stored = {p["person"] for p in listed["people"]}
        assert set(acknowledged) <= stored and len(stored) <= len(acknowledged) + 1  # + one committed, not answered
    finally:
        proc.kill()
        proc.wait()


def wait_up(url: str, proc, timeout: float = 120) -> None:
    import httpx

    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise AssertionError(f"facerec serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {timeout} s")


def test_help_names_every_flag_default():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["serve"]
    for action in sub._actions:
        if action.option_strings and action.dest != "help" and not action.required:
            assert "default" in (action.help or ""), action.option_strings


def test_cli_errors_are_one_line(ckpt, tmp_path, capsys):
    bad = tmp_path / "bad.db"
    bad.write_text("not a database")
    for argv, words in ((["--model", str(ckpt), "--gallery", str(bad)], "not a usable SQLite gallery"),
                        (["--model", str(tmp_path / "none.pt")], "checkpoint not found"),
                        (["--model", str(ckpt), "--host", "0.0.0.0"], "give --token-file"),
                        (["--model", str(ckpt), "--max-batch", "0"], "--max-batch must be at least 1")):
        assert main(["serve", "--device", "cpu", "--gallery", str(tmp_path / "g.db"), *argv]) in (1, 2)
        err = capsys.readouterr().err.strip()
        assert err.startswith("facerec serve: error:") and words in err and "\n" not in err, err


def test_an_exported_onnx_model_serves_the_checkpoints_answers(service, ckpt, model, lfw_dir, tmp_path):
    (a1, a2, *_), = lfw_people(lfw_dir, 1).values()
    onnx = tmp_path / "model.onnx"
    assert main(["-q", "export", "--checkpoint", str(ckpt), "--output", str(onnx)]) == 0
    client, _ = service(gallery=tmp_path / "onnx.db", model=onnx)
    info = client.get("/model").json()
    assert info["runtime"] == "onnxruntime" and info["thresholds"]["eer"] == pytest.approx(model.threshold())
    r = client.post("/verify", files=[*files("a", [a1]), *files("b", [a2])]).json()
    assert r["score"] == pytest.approx(model.verify(str(a1), str(a2)).score, abs=1e-5)
