"""Records of a .npy file read one by one give what the whole array gives."""

from __future__ import annotations

import numpy as np
import pytest

from synthwatch.store.npy_records import NpyRecords


def test_binary_search_and_reads_match_the_array(tmp_path):
    records = np.zeros(1_001, dtype=[("key", "<i8"), ("tag", "u1")])
    records["key"] = np.sort(np.random.default_rng(3).integers(-500, 500, len(records)))  # repeats included
    records["tag"] = np.arange(len(records)) % 251
    np.save(tmp_path / "r.npy", records, allow_pickle=False)
    reader = NpyRecords(tmp_path / "r.npy")
    values = np.array([-10_000, -500, 0, 17, 499, 10_000, *records["key"][::97]], np.int64)
    np.testing.assert_array_equal(reader.search_sorted("key", values), np.searchsorted(records["key"], values))
    np.testing.assert_array_equal(reader.read(990, 11), records[990:])
    with pytest.raises(IndexError, match=r"Expected records within 0\.\.1000 of .*r\.npy, but got 995\+7"):
        reader.read(995, 7)
