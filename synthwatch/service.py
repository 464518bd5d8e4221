"""The HTTP service: `POST /detect` (score an uploaded image with the champion head),
`POST /similar` (nearest known images), `GET /thumbnail/{image_id}` (a small JPEG of a stored
original), `GET /models` and `GET /models/{version}` (the head registry), `GET /health`, and the
analyst's web page at `/` (its files under `/web/`).

A reader of the store, which writes only its prediction log (and, if asked, uploaded images):
it keeps answering while other processes ingest, embed and re-index (short catalog connections
that wait out a committing writer), and on each request
picks up a rebuilt index or a newly promoted champion. Every route needs
``Authorization: Bearer`` except /health, which without it says only whether the service is up,
and the page and its files, which hold no data (the page asks for the token and sends it in the
header); the OpenAPI schema needs it too. Every error is ``{"detail": "<one line>"}`` (401, 404,
413, 422, 503), and the schema says so.
"""

from __future__ import annotations

import secrets
import threading
from contextlib import asynccontextmanager
from importlib import resources
from typing import Literal

from fastapi import Depends, FastAPI, File, HTTPException, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from synthwatch.embeddings.decode import DEFAULT_MAX_BYTES, DecodeLimits, ImageRejected
from synthwatch.embeddings.errors import EmbeddingError
from synthwatch.embeddings.thumbnails import MAX_THUMBNAIL_SIDE
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.heads.detection import prediction_row
from synthwatch.store.originals import IMAGE_ID
from synthwatch.store.predictions import PeriodicFlush, PredictionLog, keep_upload
from synthwatch.store.registry import VERSION_NAME, HeadRegistry
from synthwatch import __version__
from synthwatch.limits import SERVICE_MAX_PIXELS
from synthwatch.metrics import ServiceMetrics, TimedRoutes

DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024


class Problem(BaseModel):
    """Every error answer: one line saying what was expected, what came, and what to do."""

    detail: str


class KnownImage(BaseModel):
    """A stored image found near the query (``score``: cosine similarity)."""

    image_id: str
    label: Literal["real", "synthetic"]
    generator: str | None
    score: float
    path: str


class Attribution(BaseModel):
    """The generator the image is most like, with P(real) and the top few."""

    generator: str | None
    probability: float
    real_probability: float
    top: list[dict] = []


class Detection(BaseModel):
    """One image's verdict (or ``error``, in a batch, for an image that could not be decoded)."""

    query: str
    score: float | None = None
    synthetic: bool | None = None
    threshold: float | None = None
    head_version: str | None = None
    attribution: Attribution | None = None
    neighbors: list[KnownImage] = []
    error: str | None = None


class Detections(BaseModel):
    head_version: str
    results: list[Detection]


class SimilarImages(BaseModel):
    query: str | None
    neighbors: list[KnownImage]
    matching: int


class Similar(BaseModel):
    backbone_id: str
    k: int
    results: list[SimilarImages]


ERRORS = {
    401: {"model": Problem, "description": "missing or wrong bearer token"},
    413: {"model": Problem, "description": "upload over --max-upload-mb"},
    422: {"model": Problem, "description": "not an acceptable image (with the reason), or a bad parameter"},
    503: {"model": Problem, "description": "the store cannot serve yet (no index, no champion, weights missing)"},
}
LOOKUP_ERRORS = {code: ERRORS[code] for code in (401, 422, 503)} | {
    404: {"model": Problem, "description": "no such image or head version (images: only originals copied into "
                                           "the store are served)"}}
# The page's files, by the name in its URL: nothing a client sends is joined to a path.
WEB_FILES = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
WEB_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' blob:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache",
}
# A report is one file of inline styles and SVG: nothing to run, nothing to fetch.
REPORT_HEADERS = {**WEB_HEADERS, "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                                            "img-src data:; base-uri 'none'; form-action 'none'; "
                                                            "frame-ancestors 'none'"}
SOURCE_TAG = r"^[A-Za-z0-9._:/-]{1,100}$"
MAX_BATCH = 32  # images in one /detect request
DECODE_CHUNK = 4  # images of a batch decoded and embedded together
MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and part headers around the image


class BodyLimit:
    """ASGI middleware that answers 413 as soon as a request body passes ``limit`` bytes, before
    the upload is spooled anywhere (a Content-Length check alone misses chunked uploads); the
    application then sees the client as gone, and whatever it answers is dropped."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        received, started, refused = 0, False, False

        async def counted_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit and not started:
                    refused = True
                    from fastapi.responses import JSONResponse

                    await JSONResponse(status_code=413, content={"detail": (
                        f"Expected an upload of at most {self.limit - MULTIPART_OVERHEAD:,} bytes, "
                        "but it is larger. Send a smaller image, or serve with a larger --max-upload-mb.")})(
                        scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted_receive, guarded_send)


class _State:
    """What requests share: loaded indexes and backbones by backbone id, the champion's detector.

    Everything is loaded on first use and checked again on every request (a manifest read for
    an index, the alias for the champion), so the service follows the pipeline without restarts.
    """

    def __init__(self, layout: StoreLayout, backbone: str | None) -> None:
        self.layout, self.requested = layout, backbone
        self.indexes: dict = {}
        self.backbones: dict = {}
        self.detector = None
        self.lock = threading.Lock()

    def neighbors(self, backbone_id: str):
        from synthwatch.store.neighbors import NeighborIndex

        index = self.indexes.get(backbone_id)
        if index is None:
            index = self.indexes[backbone_id] = NeighborIndex(self.layout, backbone_id)
        else:
            index.refresh()
        return index

    def backbone(self, description: dict):
        from synthwatch.embeddings.backbone import cached_backbone

        return cached_backbone(description, self.backbones)

    def default_backbone_id(self) -> str:
        from synthwatch.store.backbones import resolve_backbone

        return resolve_backbone(self.layout, self.requested, need="indexes")

    def for_similar(self):
        """``(NeighborIndex, backbone)`` of the default or requested backbone."""
        with self.lock:
            neighbors = self.neighbors(self.default_backbone_id())
            return neighbors, self.backbone(neighbors.description)

    def for_detect(self):
        """``(Detector, NeighborIndex or None)`` of the current champion."""
        from synthwatch.heads.detection import Detector

        with self.lock:
            champion = HeadRegistry(self.layout).champion()
            if self.detector is None or self.detector.version != champion:
                self.detector = Detector.open(self.layout)
                self.detector.backbones = self.backbones  # one model per backbone id, shared
            try:
                neighbors = self.neighbors(self.detector.backbone_id or self.default_backbone_id())
            except StoreError:
                neighbors = None  # no index: verdicts without evidence
            return self.detector, neighbors


def create_app(layout: StoreLayout, *, token: str | None, backbone: str | None = None,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, max_pixels: int = SERVICE_MAX_PIXELS,
               decoders: int = 2, prediction_log: PredictionLog | None = None, keep_uploads: bool = False,
               metrics_dir: str | None = None) -> FastAPI:
    """The FastAPI application over one store; ``token`` None disables authentication. At most
    ``decoders`` uploads are decoded and embedded at once (each may take hundreds of MB), and none
    over ``max_pixels``. Each verdict of /detect goes to ``prediction_log`` (flushed every few
    seconds and at shutdown), and with ``keep_uploads`` its image under ``uploads/``. With
    ``metrics_dir`` (one worker of several, see :func:`serve_workers`) /metrics adds up every
    worker's counts written there."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        flusher = PeriodicFlush(prediction_log).start() if prediction_log is not None else None
        yield
        if flusher is not None:
            flusher.stop()  # the last rows, when uvicorn stops (each worker on the parent's SIGTERM)
        metrics.close()

    app = FastAPI(title="synthwatch", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan,
                  description="Score images with your own AI-generated-image detector, and find the nearest "
                              "known real and synthetic images.")
    app.add_middleware(BodyLimit, limit=max_upload_bytes + MULTIPART_OVERHEAD)
    metrics = ServiceMetrics(multiprocess_dir=metrics_dir)
    app.add_middleware(TimedRoutes, metrics=metrics)
    state = _State(layout, backbone)
    limits = DecodeLimits(max_pixels=max_pixels, max_bytes=max_upload_bytes)
    decoding = threading.BoundedSemaphore(max(1, decoders))
    bearer = HTTPBearer(auto_error=False)

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if token is None:
            return
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(401, "Expected Authorization: Bearer <token> with the service's token.",
                                headers={"WWW-Authenticate": "Bearer"})

    def _has_token(credentials: HTTPAuthorizationCredentials | None) -> bool:
        """Whether the request carries the token (routes that answer anyone say more with it)."""
        try:
            authorised(credentials)
        except HTTPException:
            return False
        return True

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors())
        return JSONResponse(status_code=422, content={"detail": f"Expected a valid request, but {problems}."})

    @app.get("/openapi.json", dependencies=[Depends(authorised)], include_in_schema=False)
    def schema() -> dict:
        """This service's OpenAPI schema, for holders of the token."""
        return app.openapi()

    @app.get("/health")
    def health(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> dict:
        """Liveness for anyone; with the token, what is loaded (champion, index, size)."""
        try:
            neighbors, _ = state.for_similar()
        except (StoreError, EmbeddingError) as error:
            neighbors, problem = None, str(error)
        answer = {"status": "ok" if neighbors is not None else "no-index"}
        if not _has_token(credentials):
            return answer
        try:
            answer["champion"] = HeadRegistry(layout).champion()
        except StoreError as error:
            answer["champion"], answer["champion_error"] = None, str(error)
        if neighbors is None:
            return {**answer, "detail": problem}
        return {**answer, "backbone_id": neighbors.backbone_id, "ntotal": int(neighbors.index.ntotal),
                "index": neighbors.version}

    @app.get("/ready", responses={503: {"model": Problem, "description": "not ready: no champion or no index"}})
    def ready(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> dict:
        """Readiness for anyone (200 once the champion and the index load, else 503); with the
        token, what is loaded, or why not. /health stays 200 while the process lives."""
        try:
            detector, neighbors = state.for_detect()
            if neighbors is None:
                raise StoreError("the store has no index for the champion's backbone yet")
        except (StoreError, EmbeddingError) as error:
            detail = str(error)
            shown = detail if _has_token(credentials) else "not ready"
            raise HTTPException(503, shown) from None
        answer = {"ready": True}
        if _has_token(credentials):
            answer.update(champion=detector.version, backbone_id=neighbors.backbone_id)
        return answer

    @app.get("/metrics", dependencies=[Depends(authorised)], response_class=Response, include_in_schema=False)
    def metrics_page() -> Response:
        """Prometheus metrics (text format): requests and latency by route and status, verdicts, head."""
        return Response(metrics.exposition(), media_type=metrics.content_type)

    @app.post("/similar", dependencies=[Depends(authorised)], responses=ERRORS, response_model=Similar,
              response_model_exclude_unset=True)
    def similar(
        request: Request,
        file: UploadFile = File(..., description="the image"),
        k: int = Query(10, ge=1, le=1000, description="neighbours returned"),
        label: Literal["real", "synthetic"] | None = Query(None, description="only neighbours with this label"),
        generator: str | None = Query(None, description="only neighbours from this generator"),
    ) -> dict:
        """The ``k`` catalogued images nearest to the upload in the default backbone's index (as
        ``synthwatch similar --json``), each with its label, generator, source and similarity."""
        from synthwatch.embeddings.query import embed_query

        data = _read_limited(request, file, max_upload_bytes)
        neighbors, model = _ready(state.for_similar)
        try:
            with decoding:
                vector = embed_query(model, data, limits)
        except ImageRejected as rejection:
            raise _rejected(rejection.reason) from None
        found, matching = neighbors.search(vector[None], k, label=label, generator=generator)
        return {"backbone_id": neighbors.backbone_id, "k": k, "results": [
            {"query": file.filename, "neighbors": [n.as_dict() for n in found[0]], "matching": matching}
        ]}

    @app.post("/detect", dependencies=[Depends(authorised)], responses=ERRORS, response_model=Detections,
              response_model_exclude_unset=True)
    def detect(
        request: Request,
        file: list[UploadFile] = File(..., description=f"the image; repeat the field for a batch (at most "
                                                       f"{MAX_BATCH}, within --max-upload-mb together)"),
        k: int = Query(5, ge=0, le=100, description="nearest known fakes returned as evidence"),
        source: str | None = Query(None, pattern=SOURCE_TAG, description="a tag of where the image came from, "
                                                                         "kept in the prediction log"),
    ) -> dict:
        """The champion's verdict on each upload (as ``synthwatch detect --json``): score, threshold,
        ``synthetic``, the likeliest generators and the ``k`` nearest known fakes as evidence. One
        refused image of a batch answers its own ``error``; a refused single upload answers 422."""
        if len(file) > MAX_BATCH:
            raise HTTPException(422, f"Expected at most {MAX_BATCH} images in one request, but got {len(file)}. "
                                     "Send them in several requests.")
        uploads = [(upload.filename, _read_limited(request, upload, max_upload_bytes)) for upload in file]
        detector, neighbors = _ready(state.for_detect)
        results, embeddings = [], []
        for start in range(0, len(uploads), DECODE_CHUNK):  # a batch's decoded pixels are held a few at a time
            with decoding:
                answers, vectors = detector.detect(uploads[start:start + DECODE_CHUNK], k=k, neighbors=neighbors,
                                                   limits=limits)
            results, embeddings = results + answers, embeddings + vectors
        if len(uploads) == 1 and "error" in results[0]:
            raise _rejected(results[0]["error"])  # one image refused: the request was
        for result, (_, data), embedding in zip(results, uploads, embeddings):
            if "error" not in result:
                record_verdict(result, data, detector, source, embedding)
        return {"head_version": detector.version, "results": results}

    def record_verdict(result: dict, data: bytes, detector, source: str | None, embedding) -> None:
        """Count the verdict, and append it to the prediction log (and keep the image, if asked)."""
        metrics.verdict(result["synthetic"], detector.version)
        if prediction_log is None:
            return
        row = prediction_row(result, data, backbone_id=detector.backbone_id, source=source, channel="http",
                             embedding=embedding)
        prediction_log.append([row])
        if keep_uploads:
            keep_upload(layout, row["image_id"], data)

    thumbnail_limits = DecodeLimits(max_pixels=max_pixels, min_side=1, max_bytes=DEFAULT_MAX_BYTES)

    @app.get("/thumbnail/{image_id}", dependencies=[Depends(authorised)], response_class=Response,
             responses={**LOOKUP_ERRORS, 200: {"content": {"image/jpeg": {}}, "description": "a JPEG"}})
    def thumbnail(
        image_id: str = Path(pattern=f"^{IMAGE_ID.pattern}$", description="an image_id from /similar or /detect"),
        size: int = Query(128, ge=16, le=MAX_THUMBNAIL_SIDE, description="longer side in pixels"),
    ) -> Response:
        """A JPEG of a catalogued image's stored original, at most ``size`` pixels a side."""
        with decoding:
            jpeg = _thumbnail(layout, image_id, size, thumbnail_limits)
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/models", dependencies=[Depends(authorised)], responses=LOOKUP_ERRORS)
    def models() -> dict:
        """Every head version (as `synthwatch models list --json`), the champion, the audit log."""
        from synthwatch.store.head_listing import list_models

        registry = HeadRegistry(layout)
        return _ready(lambda: {**list_models(registry), "audit": registry.audit()})

    @app.get("/models/{version}", dependencies=[Depends(authorised)], responses=LOOKUP_ERRORS)
    def model(version: str = Path(pattern=f"^{VERSION_NAME.pattern}$", description="a head version")) -> dict:
        """One version as `synthwatch models show --json`: its record, gate decision with every
        check (``gate``), its audit entries and whether it is the champion."""
        from synthwatch.store.head_listing import show_model

        registry = HeadRegistry(layout)
        try:
            registry.record(version)
        except StoreError as error:
            raise HTTPException(404, str(error)) from None
        return _ready(lambda: show_model(registry, version))

    @app.get("/reports/{version}", dependencies=[Depends(authorised)], response_class=HTMLResponse,
             responses={**LOOKUP_ERRORS, 200: {"content": {"text/html": {}}, "description": "the report"}})
    def report(version: str = Path(pattern=f"^{VERSION_NAME.pattern}$", description="a head version")) -> HTMLResponse:
        """The evaluation report a retrain wrote for ``version`` (self-contained HTML, no scripts)."""
        path = layout.report_path(version)
        if not path.is_file():
            raise HTTPException(404, f"Expected a head version with a report, but {version} has none (reports are "
                                     "written by `synthwatch retrain` and each cycle's retrain).")
        return HTMLResponse(path.read_bytes(), headers=REPORT_HEADERS)

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        """The analyst's page: paste the token, drop an image, see the verdict and nearest fakes."""
        return HTMLResponse(_web_file("index.html"), headers=WEB_HEADERS)

    @app.get("/web/{name}", include_in_schema=False)
    def web_file(name: str) -> Response:
        """The page's script and style sheet."""
        if name not in WEB_FILES:
            raise HTTPException(404, f"Expected one of the page's files ({', '.join(WEB_FILES)}), but got "
                                     f"{name[:80]!r}. Open / for the page.")
        return Response(_web_file(name), media_type=WEB_FILES[name], headers=WEB_HEADERS)

    return app


def _web_file(name: str) -> bytes:
    """A file of the page, read from the installed package (never from the working folder)."""
    return resources.files("synthwatch.web").joinpath(name).read_bytes()


def _thumbnail(layout: StoreLayout, image_id: str, size: int, limits: DecodeLimits) -> bytes:
    """JPEG of the stored original of ``image_id``; 404 when there is none, 422 when it does not decode."""
    from synthwatch.embeddings.decode import read_image_file
    from synthwatch.embeddings.thumbnails import thumbnail
    from synthwatch.store.originals import OriginalNotFound, stored_original

    try:
        blob = stored_original(layout, image_id)
    except OriginalNotFound as error:
        raise HTTPException(404, str(error)) from None
    except StoreError as error:  # the catalog busy past its wait, or damaged
        raise HTTPException(503, str(error)) from None
    try:
        return thumbnail(read_image_file(blob, limits), size, limits)
    except ImageRejected as rejection:
        raise HTTPException(422, f"Expected a stored original the service can decode, but {image_id} was "
                                 f"rejected: {rejection.reason}") from None
    except FileNotFoundError:
        raise HTTPException(404, f"Expected the stored original of {image_id}, but it was removed. "
                                 "Ask /detect or /similar again.") from None


def _ready(load):
    """What ``load`` returns, or 503 with the reason when the store cannot serve yet (no index,
    no champion, weights missing)."""
    try:
        return load()
    except (StoreError, EmbeddingError) as error:
        raise HTTPException(503, str(error)) from None


def _rejected(reason: str) -> HTTPException:
    return HTTPException(422, f"Expected an image, but the upload was rejected: {reason}")


def _read_limited(request: Request, file: UploadFile, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise HTTPException(413, f"Expected an upload of at most {limit:,} bytes, but got {int(declared):,}. "
                                 "Send a smaller image, or serve with a larger --max-upload-mb.")
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"Expected an upload of at most {limit:,} bytes, but it is larger. "
                                 "Send a smaller image, or serve with a larger --max-upload-mb.")
    return data
