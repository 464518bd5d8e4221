"""The HTTP service: `POST /similar` (nearest known images of an uploaded image), `GET /health`.

A reader of the store: it never writes, keeps answering while other processes ingest, embed
and re-index (short catalog connections that wait out a committing writer), and picks up a
rebuilt index on the next request. Every route but /health needs ``Authorization: Bearer``.
"""

from __future__ import annotations

import secrets
import threading
from typing import Literal

from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from embeddings.decode import ImageRejected
from store.errors import StoreError
from store.layout import StoreLayout
from synthwatch import __version__

DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024


class _Lookup:
    """The index and the backbone that made it, opened on first use and refreshed per request."""

    def __init__(self, layout: StoreLayout, backbone: str | None) -> None:
        self.layout, self.requested = layout, backbone
        self.neighbors = None
        self.backbone = None
        self.lock = threading.Lock()

    def ready(self):
        from embeddings.backbone import backbone_from_description
        from store.indexing import choose_backbone
        from store.neighbors import NeighborIndex

        with self.lock:
            if self.neighbors is None:
                backbone_id = choose_backbone(self.layout, self.requested, among="indexes")
                self.neighbors = NeighborIndex(self.layout, backbone_id)
                self.backbone = backbone_from_description(self.neighbors.description)
            elif self.neighbors.refresh() and self.neighbors.description["backbone_id"] != self.backbone.backbone_id:
                self.backbone = backbone_from_description(self.neighbors.description)
            return self.neighbors, self.backbone


def create_app(layout: StoreLayout, *, token: str | None, backbone: str | None = None,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> FastAPI:
    """The FastAPI application over one store; ``token`` None disables authentication."""
    app = FastAPI(title="synthwatch", version=__version__,
                  description="Nearest known real and synthetic images of an uploaded image.")
    lookup = _Lookup(layout, backbone)
    bearer = HTTPBearer(auto_error=False)

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if token is None:
            return
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(401, "Expected Authorization: Bearer <token> with the service's token.",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.get("/health")
    def health() -> dict:
        try:
            neighbors, _ = lookup.ready()
        except StoreError as error:
            return {"status": "no-index", "detail": str(error)}
        return {"status": "ok", "backbone_id": neighbors.backbone_id,
                "ntotal": int(neighbors.index.ntotal), "index": neighbors.version}

    @app.post("/similar", dependencies=[Depends(authorised)])
    def similar(
        request: Request,
        file: UploadFile = File(..., description="the image"),
        k: int = Query(10, ge=1, le=1000),
        label: Literal["real", "synthetic"] | None = Query(None),
        generator: str | None = Query(None),
    ) -> dict:
        from embeddings.query import embed_query

        data = _read_limited(request, file, max_upload_bytes)
        try:
            neighbors, model = lookup.ready()
        except StoreError as error:
            raise HTTPException(503, str(error)) from None
        try:
            vector = embed_query(model, data)
        except ImageRejected as rejection:
            raise HTTPException(422, f"Expected an image, but the upload was rejected: {rejection.reason}") from None
        found, matching = neighbors.search(vector[None], k, label=label, generator=generator)
        return {"backbone_id": neighbors.backbone_id, "k": k, "results": [
            {"query": file.filename, "neighbors": [n.as_dict() for n in found[0]], "matching": matching}
        ]}

    return app


def _read_limited(request: Request, file: UploadFile, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise HTTPException(413, f"Expected an upload of at most {limit:,} bytes, but got {int(declared):,}.")
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"Expected an upload of at most {limit:,} bytes, but it is larger.")
    return data
