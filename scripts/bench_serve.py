"""`facerec serve` under load, on loopback only: verify and identify requests per second and p50/p99
latency at 1, 8 and 32 concurrent clients against galleries of 10k and 100k people (synthetic embeddings
for the size, real LFW people for the answers), beside the model's raw embed rate; then a kill -9 during a
stream of enrols and a restart, checked to lose no acknowledged enrol. Appends to docs/benchmarks.md.

    python scripts/bench_serve.py --model runs/demo/best.pt [--sizes 10000,100000] [--clients 1,8,32]
    python scripts/bench_serve.py --model runs/demo/best.pt --rank1   # rank-1 against `facerec identify`

Each measurement stops at --requests requests or --seconds seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import benchlog  # noqa: E402

import facerec  # noqa: E402
from facerec.data.root import resolve  # noqa: E402


def lfw_people(n: int) -> dict[str, list[Path]]:
    root = resolve(None, "lfw") / "lfw" / "images_deepfunneled"
    out = {}
    for d in sorted(root.iterdir()):
        imgs = sorted(d.glob("*.jpg"))
        if len(imgs) >= 2:
            out[d.name] = imgs[:2]
            if len(out) == n:
                break
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(model: str, gallery: Path, port: int, threads: int) -> subprocess.Popen:
    import httpx

    cmd = [sys.executable, "-m", "facerec", "serve", "--model", model, "--gallery", str(gallery), "--port", str(port),
           "--device", "cpu", "--threads", str(threads)]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    end = time.time() + 600
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"facerec serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("facerec serve did not start in 600 s")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


async def load(url: str, make_request, clients: int, requests: int, seconds: float, answers: bool = False) -> dict:
    """`clients` concurrent loops sending make_request(i) until `requests` are done or `seconds` pass;
    with `answers`, each identify answer's best person by i."""
    import httpx

    latencies, failures, counter, best = [], 0, iter(range(requests)), {}
    deadline = time.perf_counter() + seconds

    async def client(c):
        nonlocal failures
        for i in counter:
            if time.perf_counter() > deadline:
                return
            method, path, kw = make_request(i)
            t = time.perf_counter()
            r = await c.request(method, path, **kw)
            latencies.append(time.perf_counter() - t)
            failures += r.status_code >= 400
            if answers and r.status_code == 200:
                best[i] = r.json()["matches"][0]["person"]

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(clients)))
        wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1000
    return {"n": len(lat), "rps": len(lat) / wall, "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)), "failures": failures, "answers": best}


def build_gallery(path: Path, model, checksum: str, size: int, people: dict, embeddings: np.ndarray) -> None:
    """`size` people: the real ones (first image each, bytes stored) and synthetic unit vectors for the rest."""
    from facerec.serve.gallery import Gallery

    g = Gallery(path, dim=model.embedding_dim, model_checksum=checksum)
    try:
        rng = np.random.default_rng(0)
        n_syn = size - len(people)
        syn = rng.normal(size=(n_syn, model.embedding_dim)).astype(np.float32)
        syn /= np.linalg.norm(syn, axis=1, keepdims=True)
        g.add_embeddings([f"synthetic{i:07d}" for i in range(n_syn)], syn)
        import hashlib

        for (name, imgs), e in zip(people.items(), embeddings):
            data = imgs[0].read_bytes()
            g.enrol(name, [(hashlib.sha256(data).hexdigest(), data, e)], create=True)
    finally:
        g.close()


def crash_check(model: str, work: Path, people: dict, threads: int) -> str:
    """Enrols streamed to a server killed with SIGKILL mid-stream; after a restart, every acknowledged one is there."""
    import httpx

    db, port = work / "crash.db", free_port()
    proc, acked = start(model, db, port, threads), []
    url = f"http://127.0.0.1:{port}"

    def stream():
        with httpx.Client(base_url=url, timeout=60) as c:
            for name, imgs in people.items():
                try:
                    r = c.post("/people", data={"person": name},
                               files=[("images", (imgs[0].name, imgs[0].read_bytes(), "image/jpeg"))])
                except httpx.HTTPError:
                    return
                if r.status_code == 201:
                    acked.append(name)

    t = threading.Thread(target=stream)
    t.start()
    while len(acked) < len(people) // 2 and t.is_alive():
        time.sleep(0.005)
    stop(proc)
    t.join()
    proc = start(model, db, port, threads)
    try:
        stored = {p["person"] for p in httpx.get(url + "/people", params={"limit": 1000}).json()["people"]}
    finally:
        stop(proc)
    lost = sorted(set(acked) - stored)
    if lost:
        raise SystemExit(f"kill -9 lost {len(lost)} acknowledged enrols: {lost[:5]}")
    return (f"kill -9 after {len(acked)} of {len(people)} enrols were acknowledged; after the restart {len(stored)} "
            f"people are stored, every acknowledged one among them (lost: 0)")


def full_rank1(model_path: str, work: Path, threads: int, clients: int = 8) -> str:
    """Rank-1 of `facerec identify` and of the server on every LFW person with 2+ images (first image in
    the gallery, the rest probes), person by person the same answers."""
    import json

    import httpx

    root = (resolve(None, "lfw") / "lfw" / "images_deepfunneled").resolve()  # the links' targets: absolute
    gallery, probe = work / "gallery", work / "probe"
    people = {}
    for d in sorted(root.iterdir()):
        imgs = sorted(d.glob("*.jpg"))
        if len(imgs) >= 2:
            people[d.name] = imgs
            for dest, group in ((gallery, imgs[:1]), (probe, imgs[1:])):
                (dest / d.name).mkdir(parents=True)
                for img in group:
                    (dest / d.name / img.name).symlink_to(img)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "facerec", "-q", "identify", "--gallery", str(gallery), "--probe", str(probe),
                          "--checkpoint", model_path, "--json", "--no-progress", "--device", "cpu", "--top-k", "1"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode:
        raise SystemExit(f"facerec identify failed: {out.stderr.strip()[-2000:]}")
    cli_s = time.perf_counter() - t
    want = json.loads(out.stdout)
    port = free_port()
    proc = start(model_path, work / "rank1.db", port, threads)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=120) as c:
            for name, imgs in people.items():
                r = c.post("/people", data={"person": name},
                           files=[("images", (imgs[0].name, imgs[0].read_bytes(), "image/jpeg"))])
                if r.status_code != 201:
                    raise SystemExit(f"enrol {name}: {r.status_code} {r.text}")
        probes = [(m["probe"], m["truth"], m["top"][0][0]) for m in want["matches"]]
        t = time.perf_counter()
        r = asyncio.run(load(url, lambda i: ("POST", "/identify", {"files": [
            ("image", ("p.jpg", Path(probes[i][0]).read_bytes(), "image/jpeg"))], "data": {"top_k": "1"}}),
            clients, len(probes), 1e9, answers=True))
        serve_s = time.perf_counter() - t
    finally:
        stop(proc)
    got = r["answers"]
    same = sum(got[i] == p[2] for i, p in enumerate(probes))
    rank1 = 100 * np.mean([got[i] == p[1] for i, p in enumerate(probes)])
    return (f"rank-1 on the {len(people)} LFW people with 2+ images (first image enrolled, {len(probes)} probes): "
            f"server {rank1:.2f}% ({serve_s:.0f} s), `facerec identify` {want['rank1']:.2f}% ({cli_s:.0f} s); "
            f"the same top-1 person for {same} of {len(probes)} probes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="checkpoint or ONNX file to serve")
    ap.add_argument("--sizes", default="10000,100000", help="gallery sizes in people (default 10000,100000)")
    ap.add_argument("--clients", default="1,8,32", help="concurrent clients (default 1,8,32)")
    ap.add_argument("--people", type=int, default=200, help="real LFW people enrolled and probed (default 200)")
    ap.add_argument("--requests", type=int, default=400, help="most requests per measurement (default 400)")
    ap.add_argument("--seconds", type=float, default=20, help="most seconds per measurement (default 20)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads, of the server and of the raw embed rate (default 1: on a small shared CPU a "
                         "second thread spins on one-image batches, several times slower)")
    ap.add_argument("--rank1", action="store_true",
                    help="instead of the load: every LFW person with 2+ images (first image enrolled, the rest "
                         "probed), the server's rank-1 against `facerec identify`'s (default: off)")
    ap.add_argument("--no-log", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = ap.parse_args()
    import torch

    from facerec.serve.app import file_checksum
    from facerec.serve.uploads import decode

    torch.set_num_threads(args.threads)
    if args.rank1:
        with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
            line = full_rank1(args.model, Path(tmp), args.threads)
        print(line)
        if not args.no_log:
            benchlog.append("facerec serve identify vs facerec identify, all LFW people with 2+ images",
                            [f"- model: {args.model}", "- " + line])
        return
    model, checksum = facerec.load(args.model, device="cpu"), file_checksum(args.model)
    people = lfw_people(args.people)
    probe_bytes = [imgs[1].read_bytes() for imgs in people.values()]
    gallery_arrays = [decode(imgs[0].read_bytes(), "g", _limits()) for imgs in people.values()]
    embeddings = model.embed(gallery_arrays, progress=False, workers=0, notes=False)
    for a in gallery_arrays[:5]:  # warm-up: first-call allocations
        model.embed([a], progress=False, workers=0, notes=False)
    t = time.perf_counter()
    for a in gallery_arrays[:50]:
        model.embed([a], progress=False, workers=0, notes=False)
    rate1 = 50 / (time.perf_counter() - t)
    t = time.perf_counter()
    model.embed(gallery_arrays, progress=False, workers=0, notes=False, batch_size=64)
    rate64 = len(gallery_arrays) / (time.perf_counter() - t)
    lines = [f"- server: `facerec serve --threads {args.threads}`, clients in this process (asyncio, httpx) on the "
             "same machine",
             f"- model: {model.info.get('model')}, {model.pre.input_size} px, {model.embedding_dim}-d, "
             f"tta={model.tta}; raw embed rate (decoded in memory, this process): {rate1:.1f} img/s one at a time, "
             f"{rate64:.1f} img/s in batches of 64",
             f"- real faces: the first {len(people)} LFW people with 2+ images, first image enrolled, second probed; "
             f"each measurement stops at {args.requests} requests or {args.seconds:g} s", "",
             "| gallery | index | request | clients | requests | req/s | p50 ms | p99 ms | rank-1 (real probes) |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    names = list(people)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        for size in [int(s) for s in args.sizes.split(",")]:
            db = work / f"g{size}.db"
            build_gallery(db, model, checksum, size, people, embeddings)
            port = free_port()
            proc = start(args.model, db, port, args.threads)
            url = f"http://127.0.0.1:{port}"
            try:
                import httpx

                index = httpx.get(url + "/health").json()["index"]
                answers = [httpx.post(url + "/identify", files=[("image", ("p.jpg", b, "image/jpeg"))],
                                      timeout=60).json()["matches"][0]["person"] for b in probe_bytes]
                rank1 = 100 * np.mean([a == n for a, n in zip(answers, names)])
                def verify(i):
                    a, b = probe_bytes[i % len(names)], probe_bytes[(i + 1) % len(names)]
                    return "POST", "/verify", {"files": [("a", ("a.jpg", a, "image/jpeg")), ("b", ("b.jpg", b, "image/jpeg"))]}

                def ident(i):
                    return "POST", "/identify", {"files": [("image", ("p.jpg", probe_bytes[i % len(names)], "image/jpeg"))]}

                for kind, fn in (("verify", verify), ("identify", ident)):
                    for c in [int(x) for x in args.clients.split(",")]:
                        r = asyncio.run(load(url, fn, c, args.requests, args.seconds))
                        if r["failures"]:
                            raise SystemExit(f"{r['failures']} failed {kind} requests at {c} clients")
                        row = (f"| {size:,} | {index} | {kind} | {c} | {r['n']} | {r['rps']:.1f} | {r['p50']:.1f} | "
                               f"{r['p99']:.1f} | {f'{rank1:.1f}%' if kind == 'identify' else ''} |")
                        print(row, flush=True)
                        lines.append(row)
            finally:
                stop(proc)
        lines += ["", "- " + crash_check(args.model, work, dict(list(people.items())[:60]), args.threads)]
    print("\n".join(lines))
    if not args.no_log:
        benchlog.append("facerec serve under load (loopback)", lines)


def _limits():
    from facerec.serve.uploads import Limits

    return Limits()


if __name__ == "__main__":
    main()
