"""The per-model metrics files behind `dvc metrics show`: right numbers, stale inputs refused, folder replaced."""

import pytest

from lorp.io import read_json
from lorp.summary import model_rows, selection_row, write


def records(names):
    ppl = {"ppl": {n: {"wikitext2": 10.0 + i, "average": 10.0 + i, "removed": i} for i, n in enumerate(names)}}
    zeroshot = {"accuracy": {n: {"copa": 0.5, "average": 0.5} for n in names}}
    bench = {"models": {n: {"prefill_tokens_per_s": 100.0, "decode_tokens_per_s": 10.0, "prefill_speedup": 1.0 + i,
                            "decode_speedup": 1.0, "ideal_speedup": 1.25, "parameters": 2_000_000,
                            "checkpoint_bytes": 2**21, "peak_memory_bytes": 2**22} for i, n in enumerate(names)}}
    return ppl, zeroshot, bench


def test_rows_join_the_three_records_by_model():
    rows = model_rows(*records(["dense", "lorp-6"]))
    assert rows["lorp-6"] == {"removed": 1, "ppl": {"wikitext2": 11.0, "average": 11.0},
                              "acc": {"copa": 0.5, "average": 0.5},
                              "speed": {"prefill_tok_s": 100.0, "decode_tok_s": 10.0, "prefill_x": 2.0,
                                        "decode_x": 1.0, "ideal_x": 1.25},
                              "size": {"params_m": 2.0, "checkpoint_mib": 2.0, "peak_mib": 4.0}}


def test_records_of_different_runs_are_refused():
    ppl, zeroshot, _ = records(["dense", "lorp-6"])
    _, _, bench = records(["dense", "lorp-8"])
    with pytest.raises(ValueError, match="stale"):
        model_rows(ppl, zeroshot, bench)


def test_write_replaces_the_folder(tmp_path):
    out = tmp_path / "metrics"
    write(out, {"lorp-6": {"removed": 6}, "old": {"removed": 1}})
    write(out, {"lorp-6": {"removed": 6}, "selection": selection_row(
        {"rls": 0.65034, "k": 4}, {"seconds": 48.0, "tokens_per_second": 340.0})})
    assert sorted(p.name for p in out.iterdir()) == ["lorp-6.json", "selection.json"]
    assert read_json(out / "selection.json") == {"rls": 0.6503, "k": 4,
                                                 "calibration": {"seconds": 48.0, "tokens_per_s": 340.0}}


def test_selection_row_with_forced_k_and_undefined_rls():
    """A forced K stands where RLS is undefined (mean S <= 0); the row says so instead of crashing."""
    row = selection_row({"rls": None, "k": 3}, {"seconds": 1.0, "tokens_per_second": 2.0})
    assert row["rls"] is None and row["k"] == 3
