"""The FastAPI application: `create_app(model, gallery, ...)`. Every refusal is a 4xx whose JSON
`detail` is one line; writes (enrol, add images, delete) need the bearer token when one is set."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from importlib import resources
from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from facerec.errors import FacerecError
from facerec.inference.facemodel import check_threshold, cosine
from facerec.inference.identify import decision_threshold
from facerec.serve import uploads
from facerec.serve.gallery import Conflict, GalleryError
from facerec.serve.uploads import Limits, UploadError

PERSON = re.compile(r"\w[\w .'-]{0,99}")  # a person id: letters, digits, space and . _ ' - ; 100 at most


def file_checksum(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


class Unauthorized(GalleryError):
    status = 401


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes (declared, or counted as it streams in) is
    answered 413 before the form is parsed into memory."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def _refuse(self, send) -> None:
        body = json.dumps({"detail": f"request body over the limit of {self.limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        state = {"seen": 0, "over": False, "answered": False}

        async def counted():
            msg = await receive()
            if msg["type"] == "http.request":
                state["seen"] += len(msg.get("body", b""))
                if state["seen"] > self.limit:
                    state["over"] = True
                    raise UploadError("request body over the limit", 413)
            return msg

        async def replaced(msg):
            if not state["over"]:
                return await send(msg)
            if not state["answered"]:  # whatever the app answers to a cut-off body, the client gets the 413
                state["answered"] = True
                await self._refuse(send)

        await self.app(scope, counted, replaced)


def model_info(model, checksum: str) -> dict:
    thresholds = {k: float(v) for k, v in (model.thresholds or {}).items() if np.isfinite(float(v))}
    return {"architecture": model.info.get("model"), "embedding_dim": model.embedding_dim,
            "runtime": model.info.get("runtime", "pytorch"), "preprocessing": model.pre.to_dict(), "tta": model.tta,
            "backend": model.backend.kind if model.backend is not None else None, "thresholds": thresholds,
            "sha256": checksum}


def create_app(model, gallery, *, checksum: str, token: str | None = None, limits: Limits | None = None) -> FastAPI:
    limits = limits or Limits()
    app = FastAPI(title="facerec serve", summary="Face verification and 1:N search with a persistent gallery")
    app.add_middleware(BodyLimit, limit=limits.max_body)
    # Uploads stay in memory (they are bounded by the body limit) rather than spooling to temporary files.
    from starlette.formparsers import MultiPartParser
    MultiPartParser.spool_max_size = limits.max_body
    embed_lock, busy_lock, busy = threading.Lock(), threading.Lock(), set()
    id_threshold, id_threshold_from = decision_threshold(model, None)
    info = model_info(model, checksum)

    def embed(faces) -> np.ndarray:
        with embed_lock:  # one forward pass at a time: the model already uses every core
            return model.embed([f.array for f in faces], progress=False, workers=0, notes=False)

    def authorise(request: Request) -> None:
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise Unauthorized("writes need the server's token: send 'Authorization: Bearer <token>'")

    def person_id(name: str) -> str:
        if not PERSON.fullmatch(name or ""):
            raise UploadError(f"person id {name[:40]!r} is not 1-100 letters, digits, spaces or . _ ' -")
        return name

    @app.exception_handler(GalleryError)
    async def refused(request, exc: GalleryError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(FacerecError)
    async def bad_request(request, exc: FacerecError):
        return JSONResponse({"detail": str(exc).splitlines()[0]}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        ctype = request.headers.get("content-type", "")
        if request.method == "POST" and not ctype.startswith("multipart/form-data"):
            return JSONResponse({"detail": f"expected a multipart/form-data body, got {ctype or 'none'!r}"}, 415)
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ())[1:]) or "request"
        return JSONResponse({"detail": f"{where}: {err.get('msg', 'invalid')}"}, status_code=422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return resources.files("facerec.serve").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/health", summary="liveness and gallery size")
    def health():
        return {"status": "ok", "people": gallery.people_count(), "images": gallery.image_count(),
                "index": "ivf" if gallery.ivf else "exact"}

    @app.get("/model", summary="architecture, preprocessing, thresholds and checksum of the served model")
    def model_route():
        return {**info, "identify_threshold": id_threshold, "identify_threshold_from": id_threshold_from,
                "limits": {"max_image_bytes": limits.max_image_bytes, "max_pixels": limits.max_pixels,
                           "max_batch": limits.max_batch}}

    @app.post("/embed", summary="L2-normalised embeddings of up to max_batch images")
    async def embed_route(images: Annotated[list[UploadFile] | None, File()] = None):
        faces = await uploads.faces(images, "images", limits)
        e = await run_in_threadpool(embed, faces)
        return {"dim": int(e.shape[1]), "embeddings": e.tolist(), "sha256": [f.digest for f in faces]}

    @app.post("/verify", summary="score of two images and the decision at the EER threshold, or at a FAR")
    async def verify(a: Annotated[UploadFile, File()], b: Annotated[UploadFile, File()],
                     far: Annotated[float | None, Form()] = None, threshold: Annotated[float | None, Form()] = None):
        if far is not None and threshold is not None:
            raise UploadError("give far or threshold, not both")
        fa, fb = await uploads.faces([a], "a", limits), await uploads.faces([b], "b", limits)
        e = await run_in_threadpool(embed, fa + fb)
        score = cosine(e[0], e[1]) if model.backend is None else float(model.backend.score(e[:1], e[1:])[0])
        if threshold is not None:
            thr, rule = (check_threshold(threshold) if model.backend is None else float(threshold)), "given"
        else:
            thr, rule = model.threshold(far), ("eer" if far is None else f"far={far:g}")
        return {"score": score, "threshold": thr, "threshold_rule": rule, "same": bool(score >= thr)}

    @app.post("/identify", summary="top-k enrolled people for one image; 'unknown' below the threshold")
    async def identify(image: Annotated[UploadFile, File()], top_k: Annotated[int, Form(ge=1, le=100)] = 5):
        faces = await uploads.faces([image], "image", limits)
        e = await run_in_threadpool(embed, faces)
        top = await run_in_threadpool(gallery.search, e, top_k)
        matches = [{"person": p, "score": s} for p, s in top[0]]
        unknown = not matches or (id_threshold is not None and matches[0]["score"] < id_threshold)
        return {"best": "unknown" if unknown else matches[0]["person"], "unknown": unknown, "matches": matches,
                "threshold": id_threshold, "threshold_from": id_threshold_from}

    async def enrol(request: Request, name: str, images, create: bool):
        authorise(request)
        name = person_id(name)
        with busy_lock:
            if name in busy:
                raise Conflict(f"an enrol of person {name!r} is in progress; send it again once that one is answered")
            busy.add(name)
        try:
            faces = await uploads.faces(images, "images", limits)
            e = await run_in_threadpool(embed, faces)
            rows = [(f.digest, f.data, v) for f, v in zip(faces, e)]
            result = await run_in_threadpool(lambda: gallery.enrol(name, rows, create=create))
        finally:
            with busy_lock:
                busy.discard(name)
        return JSONResponse(result, status_code=201 if create else 200)

    @app.post("/people", status_code=201, summary="enrol a new person with images (token)")
    async def enrol_new(request: Request, person: Annotated[str, Form()],
                        images: Annotated[list[UploadFile] | None, File()] = None):
        return await enrol(request, person, images, True)

    @app.post("/people/{person}/images", summary="add images to an enrolled person (token)")
    async def enrol_more(request: Request, person: str,
                         images: Annotated[list[UploadFile] | None, File()] = None):
        return await enrol(request, person, images, False)

    @app.delete("/people/{person}", summary="delete a person and their images (token)")
    async def delete(request: Request, person: str):
        authorise(request)
        return await run_in_threadpool(gallery.delete, person_id(person))

    @app.get("/people", summary="enrolled people, by name")
    def people(offset: int = 0, limit: int = 100):
        if offset < 0 or not 1 <= limit <= 1000:
            raise UploadError("offset must be >= 0 and limit in 1..1000")
        return {"total": gallery.people_count(), "people": gallery.people(offset, limit)}

    @app.get("/people/{person}/thumbnail", summary="a small JPEG of the person's first stored image")
    def thumbnail(person: str):
        data = gallery.image_bytes(person_id(person))
        return Response(uploads.thumbnail(data), media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    return app
