"""`facerec serve`: an HTTP service (FastAPI on uvicorn) for verification and 1:N search."""

from __future__ import annotations

import ipaddress
import logging
import os

from facerec.commands.common import add_device
from facerec.errors import DataError, FacerecError

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="verification and 1:N search over HTTP, with a persistent gallery and a web page",
                       description="Serve a trained model: embed, verify, enrol, identify, delete and list over HTTP "
                                   "(OpenAPI docs at /docs), and a web page at /. The gallery is an SQLite file "
                                   "with a FAISS index rebuilt from it at start.")
    p.add_argument("--model", required=True, help="facerec checkpoint (best.pt) or ONNX file from `facerec export`")
    p.add_argument("--gallery", default="gallery.db", help="SQLite gallery file, created if missing (default "
                                                           "gallery.db)")
    p.add_argument("--reembed", action="store_true",
                   help="re-embed the gallery's stored images with --model and claim it for that model, then serve "
                        "(default: refuse a gallery made by another model)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only; "
                                                       "another address needs --token-file)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--token-file", default=None,
                   help="file holding the bearer token that enrol and delete need (mode 600; default: none, "
                        "writes open to whoever reaches the port)")
    p.add_argument("--index", choices=("auto", "exact", "ivf"), default="auto",
                   help="FAISS index: exact (flat inner product), ivf (approximate), auto: ivf from 100,000 people "
                        "at start (default auto)")
    p.add_argument("--max-image-bytes", type=int, default=8 * 2**20, help="largest image file in bytes (default 8 MiB)")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="most pixels in one image (default 40 M)")
    p.add_argument("--max-batch", type=int, default=16, help="most images in one request (default 16)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    add_device(p)
    p.set_defaults(func=run)


def read_token(path) -> str:
    """The token file's first line; refused when empty or readable by group or others."""
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as fh:
            token = fh.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the token file ({getattr(exc, 'strerror', None) or exc})") from None
    if os.name == "posix" and st.st_mode & 0o077:
        raise DataError(f"{path}: the token file is readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it")
    if len(token) < 16:
        raise DataError(f"{path}: the token file's first line must hold a token of 16 characters or more, "
                        f"got {len(token)}")
    return token


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_service(args):
    """(app, gallery) for the parsed arguments: model loaded, gallery opened, checked and indexed."""
    from facerec.inference.facemodel import load
    from facerec.serve.app import create_app, file_checksum
    from facerec.serve.gallery import Gallery
    from facerec.serve.uploads import Limits, decode

    for flag in ("max_image_bytes", "max_pixels", "max_batch"):
        if getattr(args, flag) < 1:
            raise FacerecError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    token = read_token(args.token_file) if args.token_file else None
    if token is None and not _loopback(args.host):
        raise FacerecError(f"--host {args.host} opens enrol and delete to the network: give --token-file too")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = load(args.model, device=args.device)
    checksum = file_checksum(args.model)
    gallery = Gallery(args.gallery, dim=model.embedding_dim, model_checksum=checksum, index=args.index)
    try:
        if args.reembed and gallery.stored_checksum != checksum:
            limits = Limits(args.max_image_bytes, args.max_pixels, args.max_batch)
            n = gallery.reembed(lambda blobs: model.embed([decode(b, "stored image", limits) for b in blobs],
                                                          progress=False, workers=0, notes=False))
            log.info("%s: re-embedded %d images with %s", args.gallery, n, args.model)
        gallery.check_model()
        gallery.load()
    except BaseException:
        gallery.close()
        raise
    limits = Limits(args.max_image_bytes, args.max_pixels, args.max_batch)
    app = create_app(model, gallery, checksum=checksum, token=token, limits=limits)
    return app, gallery


def run(args) -> int:
    import uvicorn

    app, gallery = open_service(args)
    log.info("gallery %s: %d people, %s index; serving http://%s:%d/ (API docs at /docs)", args.gallery,
             gallery.people_count(), "IVF" if gallery.ivf else "exact", args.host, args.port)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        gallery.close()
    return 0
