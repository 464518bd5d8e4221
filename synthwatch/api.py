"""synthwatch from Python: ``Store(path)`` does what the command line does, and each result's
``as_dict()`` is what the matching command prints with ``--json``.

    from synthwatch import Store
    store = Store("synthwatch-store")
    store.ingest("photos/", "fakes.csv")
    store.embed("spectrum")
    store.train("logreg").decision          # 'promoted' or 'rejected'
    store.detect(["query.jpg"])[0].synthetic
    store.similar(["query.jpg"], k=5)
    store.models.champion

Settings not passed come from the store's synthwatch.toml (then ``SYNTHWATCH_*`` variables, then
the defaults), as on the command line. Notices go to the ``synthwatch`` logger.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence, Union

from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger("synthwatch")
ImageInput = Union[str, os.PathLike, bytes, "Image"]


@dataclass(frozen=True)
class Detection:
    """The verdict on one image: score against the head's threshold, the generator it is most
    like, and the nearest known fakes; or ``error`` when the image was refused."""

    query: str
    score: float | None = None
    synthetic: bool | None = None
    threshold: float | None = None
    head_version: str | None = None
    attribution: dict | None = None
    neighbors: tuple[dict, ...] = ()
    error: str | None = None

    @classmethod
    def from_dict(cls, entry: dict) -> "Detection":
        return cls(**{**entry, "neighbors": tuple(entry.get("neighbors", ()))})

    def as_dict(self) -> dict:
        if self.error is not None:
            return {"query": self.query, "error": self.error}
        return {"query": self.query, "score": self.score, "synthetic": self.synthetic, "threshold": self.threshold,
                "head_version": self.head_version, "attribution": self.attribution, "neighbors": list(self.neighbors)}


class _Results(Sequence):
    """A result that reads as the sequence of its ``results``, one per image."""

    results: tuple

    def __getitem__(self, index):
        return self.results[index]

    def __len__(self) -> int:
        return len(self.results)


@dataclass(frozen=True)
class Detections(_Results):
    """`synthwatch detect --json`: one :class:`Detection` per image, in order."""

    head_version: str
    results: tuple[Detection, ...]

    def as_dict(self) -> dict:
        return {"head_version": self.head_version, "results": [r.as_dict() for r in self.results]}


@dataclass(frozen=True)
class SimilarImages:
    """The nearest stored images of one query (``error`` when it was refused)."""

    query: str
    neighbors: tuple[dict, ...] = ()
    matching: int | None = None  # indexed images that pass the filters
    error: str | None = None

    def as_dict(self) -> dict:
        out: dict = {"query": self.query, "neighbors": list(self.neighbors)}
        if self.error is not None:
            return {**out, "error": self.error}
        return {**out, "matching": self.matching}


@dataclass(frozen=True)
class Similar(_Results):
    """`synthwatch similar --json`: one :class:`SimilarImages` per query, in order."""

    backbone_id: str
    k: int
    results: tuple[SimilarImages, ...]

    def as_dict(self) -> dict:
        return {"backbone_id": self.backbone_id, "k": self.k, "results": [r.as_dict() for r in self.results]}


@dataclass(frozen=True)
class Trained:
    """`synthwatch train --json`: the new head (``result``) and the gate's decision on it."""

    result: object  # heads.training.TrainResult
    decision: object  # heads.promotion.Decision

    @property
    def version(self) -> str:
        return self.result.version

    @property
    def promoted(self) -> bool:
        return self.decision.promoted

    def as_dict(self) -> dict:
        verdict = self.decision.as_dict()
        keys = ("decision", "reasons", "checks", "champion", "policy", "policy_sha256")
        return {**self.result.as_dict(), **{key: verdict[key] for key in keys}}


@dataclass(frozen=True)
class Models:
    """`synthwatch models list --json`: every head version (oldest first) and the champion."""

    versions: tuple[dict, ...]
    champion: str | None
    registry: object = field(repr=False, compare=False)

    def show(self, version: str) -> dict:
        """`synthwatch models show VERSION --json`."""
        from synthwatch.store.head_listing import show_model

        return show_model(self.registry, version)

    def as_dict(self) -> dict:
        return {"models": list(self.versions), "champion": self.champion}


class Store:
    """One store on disk (created by the first call that writes)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.layout = StoreLayout(Path(path).expanduser().resolve())

    def __repr__(self) -> str:
        return f"Store({str(self.layout.root)!r})"

    @property
    def root(self) -> Path:
        return self.layout.root

    def config(self, **overrides):
        """The settings in force (``heads.config.StoreConfig``), ``overrides`` winning."""
        from synthwatch.heads.config import load_config

        return load_config(self.root, overrides)

    def status(self) -> dict:
        """`synthwatch status --json`."""
        from synthwatch.store.catalog import Catalog
        from synthwatch.store.vectors import embedding_counts

        status = Catalog(self.layout).status()
        return {**status, "embeddings": embedding_counts(self.layout), "store": str(self.root)}

    def ingest(self, *paths: str | os.PathLike, label: str | None = None, generator: str | None = None,
               source: str | None = None, root: str | os.PathLike | None = None, layout: str | None = None,
               discovery: str | None = None, options=None, progress_factory=None):
        """Validate, deduplicate and register images (folders, files, manifests, a public
        benchmark's tree with ``layout``, or with ``discovery`` the kept uploads of a group found by
        :meth:`discover`, as fakes of ``generator``); returns ``store.ingest.IngestReport``.
        ``progress_factory(total)`` returns a callback given each chunk's count of files."""
        from synthwatch.store.ingest import IngestOptions, ingest

        plan, _ = plan_ingest(paths, label=label, generator=generator, source=source, root=root, layout=layout,
                              discovery=discovery, store=self.layout)
        progress = progress_factory(len(plan.candidates)) if progress_factory else None
        report = ingest(self.layout, plan, options or IngestOptions(), progress=progress)
        self._write_config()
        return report

    def embed(self, backbone: str | None = None, *, views: int | None = None, patches: int | None = None,
              layers: tuple[int, ...] | None = None, mode: str | None = None, revision: str | None = None,
              allow_random_weights: bool = False, options=None, progress_factory=None):
        """Embed every image that lacks vectors (default backbone: synthwatch.toml's, else
        dinov2-small, made as the champion's is when it is that backbone:
        ``embeddings.job.embedding_backbone``; augmented and patch views:
        ``heads.config.embedding_views``); returns ``embeddings.job.EmbedReport``."""
        from synthwatch.embeddings.engine import EngineOptions
        from synthwatch.embeddings.job import embed_store, embedding_backbone
        from synthwatch.heads.config import embedding_views

        name = self.backbone_to_embed(backbone)
        model = embedding_backbone(self.layout, name, layers=layers, mode=mode, revision=revision,
                                   allow_random_weights=allow_random_weights)
        if model.random_parts:
            log.warning(f"WARNING: no pretrained weights for {', '.join(model.random_parts)}; embedding with RANDOM "
                        f"weights (--allow-random-weights). These vectors are kept apart under {model.backbone_id} "
                        "and are useless for detection.")
        views, patches = embedding_views(self.config(), name, views, patches)
        report = embed_store(self.layout, model, views=views, patches=patches, options=options or EngineOptions(),
                             progress_factory=progress_factory)
        self._write_config()
        return report

    def backbone_to_embed(self, backbone: str | None = None) -> str:
        """``backbone``, else synthwatch.toml's, else the default (dinov2-small)."""
        from synthwatch.embeddings.registry import DEFAULT_BACKBONE

        return backbone or self.config().backbone or DEFAULT_BACKBONE

    def train(self, head: str | None = None, *, backbone: str | None = None, holdout: Iterable[str] = (),
              reason: str = "", options=None, policy=None, network=None, progress=None) -> Trained:
        """Train a head (default: synthwatch.toml's, else logreg), evaluate it on held-out
        generators, register it and gate it (promoted if every check passes). Embedding heads
        train on the stored vectors of ``backbone``; image networks (``npr``, ``convnext``) on the
        images, with ``network`` (``heads.network_kinds.NetworkOptions``; ``backbone`` names the
        ConvNeXt to fine-tune) and ``progress(step, loss)``. ``options``
        (``heads.training.TrainOptions``) and ``policy`` (``heads.gate.GatePolicy``) default to
        synthwatch.toml's settings."""
        from dataclasses import replace

        from synthwatch.heads.evaluation import EvalOptions
        from synthwatch.heads.network_kinds import NETWORK_HEADS, NetworkOptions
        from synthwatch.heads.training import TrainOptions

        if options is not None and (tuple(holdout) or reason):
            raise ValueError("Expected holdout and reason inside options when options are given, but got them "
                             "beside it. Pass TrainOptions(holdout=..., reason=...).")
        settings = self.config()
        head = head or settings.head
        options = options or TrainOptions(holdout=tuple(holdout), reason=reason,
                                          evaluation=EvalOptions(target_fpr=settings.target_fpr))
        if head in NETWORK_HEADS:
            from synthwatch.heads.network_job import train_network_and_register

            if head == "npr" and backbone:
                raise ValueError(f"Expected no backbone with the npr head (it trains on the images, not on "
                                 f"embeddings), but got {backbone!r}. Drop --backbone.")
            network = replace(network or NetworkOptions(), head=head,
                              backbone=backbone or (network.backbone if network else None))
            trained, _ = train_network_and_register(self.layout, network, options, progress=progress)
        else:
            from synthwatch.heads.detector import HeadSpec
            from synthwatch.heads.pipeline import train_and_register

            if network is not None:
                raise ValueError(f"Expected network options only with an image network head ({', '.join(NETWORK_HEADS)}), "
                                 f"but the head is {head}. Drop them, or choose such a head.")
            trained, _ = train_and_register(self.layout, HeadSpec(head), backbone=backbone, options=options)
        return self.gate(trained, options=options, policy=policy or settings.gate)

    def gate(self, trained, *, options, policy) -> Trained:
        """Gate a freshly registered head (``heads.training.TrainResult``): promote it if every check passes."""
        from synthwatch.heads.promotion import decide

        decision = decide(self.layout, trained.version, policy=policy, options=options, prepared=trained.prepared)
        self._write_config()
        return Trained(trained, decision)

    def detect(self, images: ImageInput | Sequence[ImageInput], *, k: int = 5, head: str | None = None,
               log: bool = False, source: str | None = None) -> Detections:
        """Score images (paths, bytes or PIL images) with the champion (or ``head``), each with
        its ``k`` nearest known fakes; with ``log``, each verdict goes to the store's prediction
        log (tagged ``source``)."""
        from synthwatch.heads.detection import Detector, prediction_row
        from synthwatch.store.predictions import PredictionLog

        detector = Detector.open(self.layout, head)
        neighbors = None
        if k:
            try:
                neighbors = self._neighbors(detector.backbone_id)
            except StoreError as error:
                log.warning(f"no nearest known fakes: {error}")
        named = _named_bytes(images)
        entries, embeddings = detector.detect(named, k=k, neighbors=neighbors)
        if log:
            prediction_log = PredictionLog(self.layout)
            prediction_log.append([prediction_row(entry, data, backbone_id=detector.backbone_id, source=source,
                                                  channel="cli", embedding=embedding)
                                   for entry, (_, data), embedding in zip(entries, named, embeddings)
                                   if "error" not in entry])
            prediction_log.flush()
        return Detections(detector.version, tuple(Detection.from_dict(entry) for entry in entries))

    def similar(self, images: ImageInput | Sequence[ImageInput], *, k: int = 10, label: str | None = None,
                generator: str | None = None, backbone: str | None = None) -> Similar:
        """The ``k`` most similar stored images of each query, optionally only of a label or generator."""
        from synthwatch.embeddings.backbone import backbone_from_description
        from synthwatch.embeddings.decode import ImageRejected
        from synthwatch.embeddings.query import embed_query

        neighbors = self._neighbors(backbone)
        model = backbone_from_description(neighbors.description)
        results = []
        for name, data in _named_bytes(images):
            try:
                vector = embed_query(model, data)
            except ImageRejected as rejection:
                results.append(SimilarImages(name, error=rejection.reason))
                continue
            found, matching = neighbors.search(vector[None], k, label=label, generator=generator)
            results.append(SimilarImages(name, tuple(n.as_dict() for n in found[0]), matching))
        return Similar(neighbors.backbone_id, k, tuple(results))

    def discover(self, *, since=None, near: float | None = None, min_group: int | None = None,
                 alpha: float | None = None, now=None) -> dict:
        """`synthwatch discover --json`: groups of recent traffic scored synthetic (or near the
        threshold) clustered on their logged embeddings, ``groups`` those farther from the known
        fakes than a known generator's fakes are from each other (``heads.discovery``); each group
        is kept for ``ingest(discovery=GROUP, generator=NAME)``. ``since`` is a ``timedelta``."""
        from synthwatch.heads.discovery import DiscoveryOptions, discover

        given = {key: value for key, value in (("since", since), ("near", near), ("min_group", min_group),
                                               ("alpha", alpha)) if value is not None}
        return discover(self.layout, DiscoveryOptions(**given), now=now)

    @property
    def models(self) -> Models:
        """The head registry: versions, champion, and ``show(version)``."""
        from synthwatch.store.head_listing import list_models
        from synthwatch.store.registry import HeadRegistry

        registry = HeadRegistry(self.layout)
        listing = list_models(registry)
        return Models(tuple(listing["models"]), listing["champion"], registry)

    def _neighbors(self, backbone: str | None):
        return open_neighbors(self.layout, backbone)

    def _write_config(self) -> None:
        from synthwatch.heads.config import write_default_config

        write_default_config(self.root)


def open_neighbors(layout: StoreLayout, backbone: str | None):
    """The index of ``backbone`` (default: the champion's, else the only one), caught up in memory
    if stale (the notice is logged)."""
    from synthwatch.store.neighbors import open_for_reading

    neighbors, notice = open_for_reading(layout, backbone)
    if notice:
        log.warning(notice)
    return neighbors


def plan_ingest(paths, *, label=None, generator=None, source=None, root=None, layout=None, discovery=None,
                store: StoreLayout | None = None):
    """What an ingest of ``paths`` would store: ``(store.candidates.Plan, layout name)``; with
    ``layout``, each path is read as that public benchmark's tree (not with label flags); with
    ``discovery``, the kept uploads of that group of ``store``, as fakes of ``generator``."""
    from synthwatch.store.candidates import Plan
    from synthwatch.store.discoveries import plan_group
    from synthwatch.store.layouts import plan_layout
    from synthwatch.store.sources import plan_sources

    if discovery:
        given = [flag for flag, value in (("PATH", paths), ("--label", label not in (None, "synthetic")),
                                          ("--source", source), ("--root", root), ("--layout", layout)) if value]
        if given or not generator:
            raise StoreError(f"Expected --from-discovery with --generator NAME alone, but got "
                             f"{', '.join(given) or 'no --generator'}. Name the group's generator, and drop the rest.")
        return plan_group(store, discovery, generator), "discovery"
    if not paths:
        raise StoreError("Expected at least one PATH to ingest (or --from-discovery GROUP), but got none. "
                         "Pass a folder, image file or manifest.")
    if not layout:
        return plan_sources(paths, label=label, generator=generator, source=source, manifest_root=root), "folders"
    given = [flag for flag, value in (("--label", label), ("--generator", generator), ("--source", source),
                                      ("--root", root)) if value]
    if given:
        raise StoreError(f"Expected --layout alone to say what each file is, but got {', '.join(given)} too. "
                         "Drop them, or drop --layout.")
    plan, names = Plan(), []
    for path in paths:
        name, part = plan_layout(path, layout)
        plan.extend(part)
        names.append(name)
    return plan, ",".join(dict.fromkeys(names))


def read_image_path(path) -> bytes:
    """The bytes of an image file (a regular file, bounded read), or ``StoreError`` naming it."""
    from synthwatch.embeddings.decode import ImageRejected, read_image_file

    try:
        return read_image_file(path)
    except ImageRejected as rejection:
        raise StoreError(f"Expected an image file, but {path} was refused: {rejection.reason}.") from None
    except OSError as error:
        raise StoreError(f"Expected a readable image file, but {path} could not be read "
                         f"({error.strerror or error}).") from None


def _named_bytes(images) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` for each image: a path is read (and named by itself), bytes are taken
    as they are, a PIL image is encoded losslessly (PNG)."""
    if isinstance(images, (str, os.PathLike, bytes)) or hasattr(images, "save"):
        images = [images]
    named = []
    for number, image in enumerate(images):
        if isinstance(image, (str, os.PathLike)):
            named.append((str(image), read_image_path(image)))
        elif isinstance(image, bytes):
            named.append((f"image-{number}", image))
        elif hasattr(image, "save"):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            named.append((f"image-{number}", buffer.getvalue()))
        else:
            raise TypeError(f"Expected image paths, bytes or PIL images, but got {type(image).__name__}. "
                            "Pass one of those.")
    return named
