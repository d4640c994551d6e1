"""`facerec serve`: verification and 1:N search over HTTP, with a persistent gallery and a web page.

`gallery.Gallery` keeps people, image digests and embeddings in SQLite and a FAISS index in step
with it; `uploads` turns request bytes into face arrays within limits; `app.create_app` is the
FastAPI application; `page.html` the page served at `/`.
"""
