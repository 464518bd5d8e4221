"""The head record: one typed, versioned description of a registered head, and the one way in
and out of the registry (:func:`register`, :func:`read_record`).

The record is stored as ``record.json`` beside the head's safetensors files; its keys are those
of :meth:`HeadRecord.as_dict`. Records written before the schema had a version read as
version 0 and gain the defaults below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from synthwatch.store.layout import StoreLayout
from synthwatch.store.registry import HeadRegistry

RECORD_SCHEMA_VERSION = 1
HEAD_FILE, ATTRIBUTION_FILE, REFERENCE_FILE = "head.safetensors", "attribution.safetensors", "reference.safetensors"
NETWORK_FILE = "network.safetensors"
_SET_BY_REGISTRY = ("version", "created_at", "files", "gate")


@dataclass(frozen=True)
class HeadRecord:
    """What a head is, what it was trained on, and how it measured.

    ``kind`` is a head kind (``logreg``...) or ``convnext-finetune``; embedding heads have
    ``backbone_id``, ``backbone`` (its description), ``head`` (and ``attribution``) configs;
    fine-tuned networks have ``network``. ``split_seed`` is the seed the catalog assigned the
    splits with; ``resample_seed`` seeded bootstrap and sampling. The registry adds ``version``,
    ``created_at``, ``files`` and, once judged, ``gate``.
    """

    kind: str
    target: str
    threshold: float
    target_fpr: float
    generators_seen: list[str]
    holdout: list[str]
    train_groups: list[str]
    counts: dict
    metrics: dict
    data_fingerprint: str
    split_seed: int = 0
    resample_seed: int = 0
    reason: str = ""
    backbone_id: str | None = None
    backbone: dict | None = None
    head: dict | None = None
    attribution: dict | None = None
    network: dict | None = None
    dedup_threshold: float | None = None
    training_sample: dict | None = None  # bounded retraining: how the replay set was drawn
    evaluation_sample: dict | None = None  # bounded retraining: how validation and test images were sampled
    schema_version: int = RECORD_SCHEMA_VERSION
    version: str | None = None
    created_at: str | None = None
    files: dict = field(default_factory=dict)
    gate: dict | None = None

    @property
    def embeds(self) -> bool:
        """Whether the head scores embeddings (else images, through its own network)."""
        return self.network is None

    @classmethod
    def from_dict(cls, stored: dict) -> "HeadRecord":
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in stored.items() if key in known}
        values.setdefault("schema_version", 0)
        values.setdefault("resample_seed", stored.get("split_seed", 0))
        for key, default in (("generators_seen", []), ("holdout", []), ("train_groups", []), ("counts", {}),
                             ("data_fingerprint", ""), ("target_fpr", 0.01)):
            values.setdefault(key, default)  # keys records of earlier releases may lack
        return cls(**values)

    def as_dict(self) -> dict:
        """The JSON stored as ``record.json`` (and printed by ``models show``)."""
        out = asdict(self)
        if out["gate"] is None:
            del out["gate"]
        return out


def register(layout: StoreLayout, record: HeadRecord, files: dict[str, bytes]) -> str:
    """Write a new head version (not promoted) with its files; returns the version."""
    registry = HeadRegistry(layout)
    version = registry.new_version()
    stored = {key: value for key, value in record.as_dict().items() if key not in _SET_BY_REGISTRY}
    registry.write_version(version, stored, files, reason=record.reason or "trained")
    return version


def read_record(registry: HeadRegistry, version: str) -> HeadRecord:
    return HeadRecord.from_dict(registry.record(version))
