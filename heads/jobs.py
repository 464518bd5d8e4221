"""`synthwatch train` and `synthwatch evaluate` over a store: load the labelled vectors, embed the
robustness views of the images evaluation tests on, find near-duplicates, run the protocol, fit
the head, and register it with its lineage."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from synthwatch.heads.dataset import CLEAN_VIEW, REAL, EmbeddingSet, split_of_rows
from synthwatch.heads.detector import HeadSpec, fit_head
from synthwatch.heads.evaluation import EvalOptions, Evaluation, calibrate, evaluate_fitted, evaluate_protocol, make_fold, scorer
from synthwatch.heads.finetune import FINETUNE_KIND, convnext_spec, network_from_bytes
from synthwatch.heads.persist import decode_arrays, decode_head, encode_arrays, encode_head
from synthwatch.store.errors import StoreError
from synthwatch.store.index import IndexStore
from synthwatch.store.indexing import choose_backbone, open_current_index, sync_index
from synthwatch.store.layout import StoreLayout
from synthwatch.store.registry import HeadRegistry
from synthwatch.store.training_data import labelled_vectors
from synthwatch.store.vectors import VectorStore

DEFAULT_DEDUP_THRESHOLD = 0.95
REFERENCE_SAMPLE = 2000  # training fakes kept with a head, the reference of embedding drift checks
HEAD_FILE, ATTRIBUTION_FILE, REFERENCE_FILE = "head.safetensors", "attribution.safetensors", "reference.safetensors"
NETWORK_FILE = "network.safetensors"


@dataclass(frozen=True)
class TrainOptions:
    """What a training run holds out and how it is evaluated."""

    holdout: tuple[str, ...] = ()
    evaluation: EvalOptions = field(default_factory=EvalOptions)
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD
    robustness: bool = True
    reason: str = ""


@dataclass
class PreparedData:
    """The labelled vectors of one backbone and the near-duplicate pairs found among them."""

    backbone_id: str
    description: dict
    data: EmbeddingSet
    pairs: list[tuple[str, str, float]]
    dedup_threshold: float
    notes: list[str] = field(default_factory=list)


def resolve_backbone_id(layout: StoreLayout, requested: str | None) -> str:
    """``--backbone``, else the champion head's backbone, else the only one with vectors."""
    preferred = HeadRegistry(layout).champion_backbone()
    return choose_backbone(layout, requested, among="vectors", preferred=preferred)


def load_embedding_set(layout: StoreLayout, backbone_id: str) -> EmbeddingSet:
    table = labelled_vectors(layout, backbone_id)
    n = table.num_rows
    vectors = table.column("vector").combine_chunks().flatten().to_numpy().astype(np.float32)
    return EmbeddingSet(
        np.asarray(table.column("image_id").to_pylist(), dtype=object),
        vectors.reshape(n, -1) if n else np.zeros((0, 0), np.float32),
        np.asarray(table.column("generator").to_pylist(), dtype=object),
        np.asarray(table.column("source").to_pylist(), dtype=object),
        table.column("view").to_numpy().astype(np.int64),
    )


def prepare_data(layout: StoreLayout, backbone_id: str, *, options: TrainOptions) -> PreparedData:
    """Everything evaluation needs from the store, with robustness views embedded first."""
    _, description = VectorStore(layout, backbone_id).shape_and_description()
    notes = []
    data = load_embedding_set(layout, backbone_id)
    if options.robustness:
        added = embed_robustness_views(layout, data, description, seed=options.evaluation.seed)
        if added:
            notes.append(f"embedded {added} robustness views (JPEG q50-95, 0.5x) of evaluation images")
            data = load_embedding_set(layout, backbone_id)
    if len(data) == 0:
        raise StoreError(f"Expected labelled vectors for {backbone_id}, but none of its vectors belong to "
                         "catalog images. Run `synthwatch ingest` and `synthwatch embed`.")
    threshold, note = effective_dedup_threshold(data, options.dedup_threshold, seed=options.evaluation.seed)
    if note:
        notes.append(note)
    if IndexStore(layout, backbone_id).manifest() is None:  # near-duplicate checks need the index
        built = sync_index(layout, backbone_id)
        notes.append(f"built the index of {backbone_id} ({built['index_type']}, {built['ntotal']} vectors)")
    neighbors, repaired = open_current_index(layout, backbone_id)
    if repaired:
        notes.append(repaired)
    return PreparedData(backbone_id, description, data, neighbors.pairs_above(threshold), threshold, notes)


def effective_dedup_threshold(data: EmbeddingSet, requested: float, *, seed: int = 0) -> tuple[float, str | None]:
    """``requested``, raised to the 99.9th percentile of similarities between images of different
    source groups when unrelated images already score that high (random-weight backbones do):
    a near-duplicate threshold must sit above what unrelated pictures reach."""
    clean = data.take(data.views == CLEAN_VIEW)
    if len(clean) < 10:
        return requested, None
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(clean), 4000), rng.integers(0, len(clean), 4000)
    unrelated = clean.sources[a] != clean.sources[b]
    if unrelated.sum() < 100:
        return requested, None
    similarity = np.einsum("ij,ij->i", clean.vectors[a[unrelated]], clean.vectors[b[unrelated]])
    tail = float(np.percentile(similarity, 99.9))
    if tail <= requested:
        return requested, None
    raised = float(min(0.99999, tail))
    return raised, (f"near-duplicate threshold raised from {requested} to {raised:.5f}: 0.1% of pairs of images "
                    "from different source groups already score that high with this backbone")


def embed_robustness_views(layout: StoreLayout, data: EmbeddingSet, description: dict, *, seed: int) -> int:
    """Embed the JPEG and 0.5x views of every image of ``data`` (the stored vectors of the
    backbone ``description`` names) that evaluation may test on: all synthetic images, and real
    images outside the training split. Returns the rows added."""
    from synthwatch.embeddings.backbone import backbone_from_description
    from synthwatch.embeddings.engine import EngineOptions
    from synthwatch.embeddings.job import embed_store
    from synthwatch.embeddings.views import ROBUSTNESS_VIEWS

    clean = data.take(data.views == CLEAN_VIEW)
    wanted = (clean.generators != REAL) | (split_of_rows(clean, seed=seed) != "train")
    have = {view: set(data.image_ids[data.views == view].tolist()) for view in ROBUSTNESS_VIEWS.values()}
    missing = {i for i in clean.image_ids[wanted].tolist() if any(i not in ids for ids in have.values())}
    if not missing:
        return 0
    backbone = backbone_from_description(description)
    report = embed_store(layout, backbone, extra_views=tuple(ROBUSTNESS_VIEWS.values()), only=missing,
                         options=EngineOptions(workers=0))
    return report.embedded


@dataclass
class TrainedHead:
    """A fitted head with its threshold and what the registry keeps beside it."""

    spec: HeadSpec
    head: object
    attribution: object | None
    threshold: float
    reference: dict[str, np.ndarray]
    counts: dict
    train_groups: list[str]


def fit_final(spec: HeadSpec, prepared: PreparedData, options: TrainOptions) -> TrainedHead:
    """The head to register: trained on the training split of every generator not held out,
    its threshold set on validation real images at the target false-positive rate."""
    fold = make_fold(prepared.data, options.holdout, seed=options.evaluation.seed, near_duplicates=prepared.pairs)
    labels = fold.train.labels
    if not (labels == 1).any() or not (labels == 0).any():
        raise StoreError("Expected real and synthetic images in the training split, but it holds "
                         f"{int((labels == 0).sum())} real and {int((labels == 1).sum())} synthetic rows. "
                         "Ingest both, from at least 3 source groups, and embed them.")
    head = fit_head(spec, fold.train)
    score = scorer(head, spec.target)
    threshold = calibrate(score, fold, options.evaluation.target_fpr)
    attribution = head if spec.kind == "attribution" else fit_head(HeadSpec("attribution"), fold.train)
    train_fakes = fold.train.take((fold.train.labels == 1) & (fold.train.views == CLEAN_VIEW))
    rng = np.random.default_rng(options.evaluation.seed)
    sample = rng.choice(len(train_fakes), min(REFERENCE_SAMPLE, len(train_fakes)), replace=False)
    val_fake = fold.val_fake.take(fold.val_fake.views == CLEAN_VIEW)
    reference = {
        "train_fake_vectors": train_fakes.vectors[np.sort(sample)],
        "val_real_scores": score(fold.val_real.vectors).astype(np.float32),
        "val_fake_scores": score(val_fake.vectors).astype(np.float32),
    }
    counts = {"train_rows": len(fold.train), "train_real": int((labels == 0).sum()),
              "train_synthetic": int((labels == 1).sum()), "val_real": len(fold.val_real),
              "val_synthetic": len(val_fake)}
    return TrainedHead(spec, head, None if attribution is head else attribution, threshold, reference, counts,
                       sorted(set(fold.train.sources.tolist())))


def train_and_register(layout: StoreLayout, spec: HeadSpec, *, backbone: str | None = None,
                       options: TrainOptions = TrainOptions()) -> tuple[dict, Evaluation]:
    """Evaluate ``spec`` on held-out generators, fit the final head and register it as a new
    version (not promoted). Returns the ``train --json`` payload and the evaluation."""
    backbone_id = resolve_backbone_id(layout, backbone)
    prepared = prepare_data(layout, backbone_id, options=options)
    protocol = "holdout" if options.holdout else "logo"
    evaluation = evaluate_protocol(spec, prepared.data, protocol=protocol, holdout=options.holdout,
                                   options=options.evaluation, near_duplicates=prepared.pairs)
    trained = fit_final(spec, prepared, options)
    use_final_threshold(evaluation, trained.threshold)
    version = register(layout, trained, prepared, options, evaluation)
    prepared.notes += threshold_notes(trained.counts["val_real"], options.evaluation.target_fpr)
    return {
        "version": version, "head": spec.kind, "backbone_id": backbone_id,
        "threshold": round(trained.threshold, 6), "target_fpr": options.evaluation.target_fpr,
        "generators_seen": sorted(set(prepared.data.generator_names()) - set(options.holdout)),
        "holdout": sorted(options.holdout), "counts": trained.counts,
        "metrics": evaluation.as_dict(), "notes": prepared.notes,
    }, evaluation


def use_final_threshold(evaluation: Evaluation, threshold: float) -> None:
    """Leave-one-generator-out measures one head per fold, each at its own threshold (in
    ``per_generator``); the evaluation's ``threshold`` is then the final head's."""
    if evaluation.protocol == "logo":
        evaluation.threshold, evaluation.threshold_source = threshold, "head"


def threshold_notes(validation_reals: int, target_fpr: float) -> list[str]:
    """A warning when too few validation real images exist to place a threshold at the target FPR."""
    if target_fpr > 0 and validation_reals * target_fpr < 1:
        return [f"only {validation_reals} validation real images: a {target_fpr:.0%} false-positive rate cannot be "
                f"resolved (the smallest step is {1 / max(validation_reals, 1):.1%}), so the threshold sits just above "
                f"the highest real score; ingest at least {int(round(1 / target_fpr))} real images in validation "
                "source groups"]
    return []


def register(layout: StoreLayout, trained: TrainedHead, prepared: PreparedData, options: TrainOptions,
             evaluation: Evaluation) -> str:
    """Write a trained head and its lineage to the registry; returns its version."""
    config, weights = encode_head(trained.head)
    files = {HEAD_FILE: weights, REFERENCE_FILE: encode_arrays(trained.reference)}
    record = {
        "kind": trained.spec.kind, "target": trained.spec.target, "head": config,
        "threshold": trained.threshold, "backbone_id": prepared.backbone_id, "backbone": prepared.description,
        "data_fingerprint": prepared.data.fingerprint(prepared.backbone_id),
        "generators_seen": sorted(set(prepared.data.generator_names()) - set(options.holdout)),
        "dedup_threshold": prepared.dedup_threshold, "counts": trained.counts, "train_groups": trained.train_groups,
    }
    if trained.attribution is not None:
        record["attribution"], files[ATTRIBUTION_FILE] = encode_head(trained.attribution)
    return _write(layout, record, files, options, evaluation)


def _write(layout: StoreLayout, record: dict, files: dict[str, bytes], options: TrainOptions,
           evaluation: Evaluation) -> str:
    """Add what every head records (target FPR, holdout, split seed, metrics, reason) and write it."""
    registry = HeadRegistry(layout)
    record = {**record, "target_fpr": options.evaluation.target_fpr, "holdout": sorted(options.holdout),
              "split_seed": options.evaluation.seed, "metrics": evaluation.as_dict(), "reason": options.reason}
    version = registry.new_version()
    registry.write_version(version, record, files, reason=options.reason or "trained")
    return version


@dataclass
class LoadedHead:
    """A registered head ready to score: an embedding head (with its attribution head) scoring
    vectors, or a fine-tuned network scoring images."""

    record: dict
    head: object = None
    attribution: object = None
    network: object = None
    network_spec: object = None

    @property
    def version(self) -> str:
        return self.record["version"]

    @property
    def threshold(self) -> float:
        return float(self.record["threshold"])

    @property
    def embeds(self) -> bool:
        """Whether it scores embeddings (else images, through its own network)."""
        return self.network is None

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        return scorer(self.head, self.record["target"])(vectors)

    def reference(self, registry: HeadRegistry) -> dict[str, np.ndarray]:
        return decode_arrays(registry.read_file(self.version, REFERENCE_FILE))


def load_registered(layout: StoreLayout, version: str | None = None) -> LoadedHead:
    """The head ``version``, or the champion; a clear error says how to train one if none exists."""
    registry = HeadRegistry(layout)
    version = version or registry.champion()
    if version is None:
        trained = registry.versions()
        hint = (f"{len(trained)} versions exist but none is the champion: promote one with "
                "`synthwatch models promote VERSION`, or pass --head VERSION." if trained else
                "Train one with `synthwatch train` (after `synthwatch ingest` and `synthwatch embed`).")
        raise StoreError(f"Expected a champion head in {layout.root}, but there is none. {hint}")
    record = registry.record(version)
    if record["kind"] == FINETUNE_KIND:
        spec = convnext_spec(record["network"]["backbone"])
        return LoadedHead(record, network=network_from_bytes(spec, registry.read_file(version, NETWORK_FILE)),
                          network_spec=spec)
    head = decode_head(record["head"], registry.read_file(version, HEAD_FILE))
    attribution = head if record["kind"] == "attribution" else decode_head(
        record["attribution"], registry.read_file(version, ATTRIBUTION_FILE))
    return LoadedHead(record, head, attribution)


def evaluate_registered(layout: StoreLayout, *, version: str | None, protocol: str | None,
                        options: TrainOptions = TrainOptions(), split_seed: int | None = None,
                        prepared_cache: dict | None = None) -> tuple[dict, Evaluation]:
    """``synthwatch evaluate``: ``holdout`` measures the registered head itself on generators it
    never saw and on the test split of those it did; ``logo`` re-runs leave-one-generator-out
    with its kind and parameters. Without a head in the registry, the default head is evaluated.
    The head's own splits are used unless ``split_seed`` names others (the gate compares a
    champion on its candidate's splits). ``prepared_cache`` keeps the prepared data between calls
    that share a backbone, near-duplicate threshold and splits (the gate's two evaluations)."""
    registry = HeadRegistry(layout)
    version = version or registry.champion() or (registry.versions()[-1]["version"] if registry.versions() else None)
    if version is None:
        backbone_id = resolve_backbone_id(layout, None)
        prepared = prepare_data(layout, backbone_id, options=options)
        evaluation = evaluate_protocol(HeadSpec(), prepared.data, protocol=protocol or "logo",
                                       holdout=options.holdout, options=options.evaluation,
                                       near_duplicates=prepared.pairs)
        if evaluation.protocol == "logo":
            use_final_threshold(evaluation, fit_final(HeadSpec(), prepared, options).threshold)
        return {"head_version": None, "backbone_id": backbone_id, **evaluation.as_dict(),
                "notes": prepared.notes}, evaluation
    loaded = load_registered(layout, version)
    record = loaded.record
    if not loaded.embeds:
        from synthwatch.heads.finetune_job import evaluate_network

        if protocol == "logo":
            raise ValueError(f"Expected --protocol holdout for the fine-tuned head {version}, but got logo: every "
                             "fold would fine-tune a network again. Train one per held-out set with --holdout.")
        evaluation = evaluate_network(layout, loaded, options)
        return {"head_version": version, "backbone_id": None, **evaluation.as_dict(), "notes": []}, evaluation
    if options.holdout and sorted(options.holdout) != sorted(record.get("holdout", [])):
        raise ValueError(f"Expected --holdout only without a registered head, but head {version} is evaluated on "
                         f"what it never saw ({', '.join(record.get('holdout', [])) or 'no held-out generator'} and "
                         "generators newer than it). To hold out others, train a head with `synthwatch train "
                         "--holdout G1,G2`.")
    seed = record["split_seed"] if split_seed is None else split_seed
    evaluation_options = replace(options.evaluation, target_fpr=record["target_fpr"], seed=seed)
    options = replace(options, evaluation=evaluation_options, dedup_threshold=record["dedup_threshold"])
    cache = {} if prepared_cache is None else prepared_cache
    key = (record["backbone_id"], record["dedup_threshold"], seed, options.robustness)
    prepared = cache[key] if key in cache else prepare_data(layout, record["backbone_id"], options=options)
    cache[key] = prepared
    if (protocol or "holdout") == "holdout":
        evaluation = evaluate_fitted(loaded.scores, loaded.threshold, prepared.data, seen=record["generators_seen"],
                                     options=evaluation_options, near_duplicates=prepared.pairs)
    else:
        spec = HeadSpec(record["kind"], record["head"]["params"])
        evaluation = evaluate_protocol(spec, prepared.data, protocol="logo", options=evaluation_options,
                                       near_duplicates=prepared.pairs)
        use_final_threshold(evaluation, loaded.threshold)
    return {"head_version": version, "backbone_id": record["backbone_id"], **evaluation.as_dict(),
            "notes": prepared.notes}, evaluation
