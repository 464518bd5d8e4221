"""Saved heads come back identical, as safetensors + JSON, without any code being run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthwatch.heads.detector import HEAD_TYPES
from synthwatch.heads.persist import decode_head, encode_head


@pytest.mark.parametrize("kind", sorted(HEAD_TYPES))
@pytest.mark.parametrize("labels", ["binary", "names"])
def test_round_trip_gives_the_same_probabilities(kind, labels):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 8)).astype(np.float32)
    y = (X[:, 0] + 0.3 * rng.normal(size=120) > 0).astype(int)
    if labels == "names":
        y = np.array(["", "flux", "mj"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)]
    head = HEAD_TYPES[kind]().fit(X, y)
    config, data = encode_head(head)
    config = json.loads(json.dumps(config))  # as stored
    restored = decode_head(config, data)
    assert restored.classes_.tolist() == head.classes_.tolist()
    np.testing.assert_allclose(restored.predict_proba(X), head.predict_proba(X), rtol=1e-6, atol=1e-7)
    # safetensors: an 8-byte header size, a JSON header naming each array, then raw array bytes.
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    assert set(header) - {"__metadata__"} == set(head.state())


def test_unknown_types_are_refused():
    with pytest.raises(ValueError, match="Expected a head type in .* but the saved head says 'os.system'"):
        decode_head({"type": "os.system", "params": {}, "classes": [0, 1], "n_features": 2}, b"")


def test_a_head_record_of_an_earlier_release_still_reads():
    from synthwatch.heads.records import HeadRecord

    old = {"kind": "logreg", "target": "binary", "threshold": 0.5, "metrics": {"per_generator": {}},
           "split_seed": 3, "version": "h1", "created_at": "2026-11-01T00:00:00", "files": {}}
    record = HeadRecord.from_dict(old)
    assert (record.schema_version, record.resample_seed, record.train_groups, record.holdout) == (0, 3, [], [])
