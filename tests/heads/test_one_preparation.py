"""One decision prepares its evaluation data once: training, the candidate's gate evaluation and
the champion's all read the same immutable dataset."""

from __future__ import annotations

import synthwatch.heads.pipeline as pipeline

NO_FLOORS = ("--auroc-floor", "0", "--tpr-floor", "0", "--n-boot", "100")


def test_train_and_its_gate_prepare_the_data_once(cli, proxy_store, monkeypatch):
    store, _ = proxy_store
    assert cli("--store", store, "train", *NO_FLOORS, "--json")[1]["decision"] == "promoted"  # a champion to compare
    calls = []
    original = pipeline.prepare_data

    def counted(*args, **kwargs):
        calls.append(args[1])
        prepared = original(*args, **kwargs)
        try:  # immutable: nothing downstream can change what the next step reads
            prepared.pairs = ()
        except AttributeError:
            pass
        else:
            raise AssertionError("EvaluationData is writable")
        return prepared

    monkeypatch.setattr(pipeline, "prepare_data", counted)
    code, out, err = cli("--store", store, "train", *NO_FLOORS, "--json")
    assert code == (3 if out["decision"] == "rejected" else 0), err  # 3: the gate rejected it
    assert any(check["name"].startswith("backward_transfer") for check in out["checks"])  # the champion was measured
    assert len(calls) == 1
