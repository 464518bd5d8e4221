"""An IVF index searched with its lists read per search answers exactly as the whole index does,
whatever the budget, and refuses a file whose lists end early."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from synthwatch.store.paged_ivf import PagedIVF

DIM, VECTORS = 16, 3_000


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    rng = np.random.default_rng(7)
    matrix = rng.standard_normal((VECTORS, DIM)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def _written(tmp_path, vectors: np.ndarray, codes: str) -> tuple[faiss.Index, str]:
    index = faiss.index_factory(DIM, f"IVF32_HNSW32,{codes}", faiss.METRIC_INNER_PRODUCT)
    index.train(vectors)
    index.add_with_ids(vectors, np.arange(VECTORS, dtype=np.int64) * 11 + 5)
    faiss.extract_index_ivf(index).nprobe = 4
    path = str(tmp_path / f"{codes}.faiss")
    faiss.write_index(index, path)
    return index, path


@pytest.mark.parametrize("codes", ["Flat", "SQ8", "PQ4"])
@pytest.mark.parametrize("budget", [1, 1 << 30], ids=["one-list-at-a-time", "all-at-once"])
def test_answers_as_the_whole_index(tmp_path, vectors, codes, budget):
    whole, path = _written(tmp_path, vectors, codes)
    paged = PagedIVF(path, budget=budget)
    queries = vectors[:40] + 0.1 * np.random.default_rng(1).standard_normal((40, DIM)).astype(np.float32)
    for params in (None, lambda: faiss.SearchParametersIVF(sel=faiss.IDSelectorBatch(np.arange(0, VECTORS, 3) * 11 + 5),
                                                           nprobe=8)):
        expected = whole.search(queries, 12, params=params() if params else None)
        got = paged.search(queries, 12, params() if params else None)
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)
    limits, scores, keys = whole.range_search(queries, 0.6)
    got_limits, got_scores, got_keys = paged.range_search(queries, 0.6)
    np.testing.assert_array_equal(got_limits, limits)
    for row in range(len(queries)):
        span, got_span = slice(limits[row], limits[row + 1]), slice(got_limits[row], got_limits[row + 1])
        assert dict(zip(got_keys[got_span].tolist(), got_scores[got_span].round(5).tolist())) == \
            dict(zip(keys[span].tolist(), scores[span].round(5).tolist()))
    assert got_limits[-1] > 0  # the threshold leaves neighbours to compare


def test_more_neighbours_asked_than_probed_lists_hold_come_back_as_missing(tmp_path, vectors):
    whole, path = _written(tmp_path, vectors, "Flat")
    params = faiss.SearchParametersIVF(nprobe=1)
    scores, keys = PagedIVF(path, budget=1).search(vectors[:3], VECTORS, params)
    expected_scores, expected_keys = whole.search(vectors[:3], VECTORS, params=faiss.SearchParametersIVF(nprobe=1))
    np.testing.assert_array_equal(keys, expected_keys)
    assert (keys == -1).any() and (keys[:, 0] >= 0).all()


def test_a_file_cut_short_under_a_reader_is_refused_with_its_name(tmp_path, vectors):
    _, path = _written(tmp_path, vectors, "Flat")
    paged = PagedIVF(path, budget=1)
    with open(path, "r+b") as file:
        file.truncate(file.seek(0, 2) // 2)
    with pytest.raises(ValueError, match=rf"Expected list \d+ of \d+ vectors in {path}, but the file ends early"):
        paged.search(vectors, 10)
