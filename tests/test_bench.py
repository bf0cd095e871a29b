"""The efficiency benchmark on tiny dense and pruned checkpoints: structure, ideal speed-up, files. No timings."""

import copy
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, tiny_model
from test_flops import expected_flops

from lorp.evaluate import bench
from lorp.evaluate.bench import (
    BEST_OF,
    MAX_PAIRS_FACTOR,
    MORE_PAIRS,
    TARGET_SPREAD,
    architecture,
    benchmark,
    benchmark_plans,
    checkpoint_bytes,
    cpu_threads,
    median_interval,
    paired_ratios,
    selection_cost,
    speedup_pairs,
    spread,
    write_results,
)
from lorp.model.prune import remove_blocks, save

pytestmark = pytest.mark.model  # builds or runs a model: not in make test-fast

REMOVED = [1, 3, 4]
SMALL = {"dtype": "float32", "device": "cpu", "batch": 2, "seqlen": 12, "new_tokens": 4, "prompt_len": 4,
         "repeats": 3, "warmup": 0}
FIELDS = {"name", "blocks", "parameters", "checkpoint_bytes", "peak_memory_bytes", "peak_memory_kind",
          "prefill_tokens_per_s", "decode_tokens_per_s", "prefill_speedup", "decode_speedup", "ideal_speedup",
          "flops_per_token", "device", "dtype", "batch", "seqlen", "new_tokens", "repeats", "prefill_spread",
          "decode_spread", "prefill_ci", "decode_ci", "prefill_pairs", "decode_pairs", "best_of", "memory_ratio",
          "weight_bytes", "activation_bytes", "threads", "target_spread", "more_pairs", "max_pairs"}


def test_cpu_threads_sets_the_count_inside_and_restores_it_after_an_error():
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with pytest.raises(RuntimeError), cpu_threads(other):
        assert torch.get_num_threads() == other
        raise RuntimeError("a failed timing")
    assert torch.get_num_threads() == before
    with cpu_threads(0):  # 0: torch's own count, untouched
        assert torch.get_num_threads() == before


class _NoTokenizer:
    def save_pretrained(self, path):
        pass


@pytest.fixture
def checkpoints(arch, tmp_path):
    dense = tiny_model(arch)
    dense.save_pretrained(tmp_path / "dense")
    save(remove_blocks(copy.deepcopy(dense), REMOVED), _NoTokenizer(), tmp_path / "pruned", {"removed": REMOVED})
    return [("dense", tmp_path / "dense"), ("pruned", tmp_path / "pruned")]


def test_benchmark_rows_and_files(arch, checkpoints, tmp_path):
    rows = benchmark(checkpoints, **SMALL)
    assert [r["name"] for r in rows] == ["dense", "pruned"]
    dense, pruned = rows
    for row in rows:
        assert FIELDS <= row.keys()
        assert row["peak_memory_kind"] in {"weights + cuda_allocated", "weights + cpu_rss_delta"}
        assert row["peak_memory_bytes"] == row["weight_bytes"] + row["activation_bytes"]
        for kind in ("prefill", "decode"):
            lo, hi = row[f"{kind}_ci"]
            assert lo <= row[f"{kind}_speedup"] <= hi
        assert row["peak_memory_bytes"] > 0 and row["prefill_tokens_per_s"] > 0 and row["decode_tokens_per_s"] > 0
        assert row["prefill_spread"] >= 0 and row["decode_spread"] >= 0
        assert row["checkpoint_bytes"] == checkpoint_bytes(checkpoints[rows.index(row)][1]) > 0
    json.dumps(rows)  # serialisable as is
    assert (dense["blocks"], pruned["blocks"]) == (6, 3)
    assert pruned["parameters"] < dense["parameters"]
    assert pruned["checkpoint_bytes"] < dense["checkpoint_bytes"]
    assert dense["ideal_speedup"] == dense["memory_ratio"] == 1.0 and pruned["weight_bytes"] < dense["weight_bytes"]

    full = tiny_model(arch)
    cut = remove_blocks(copy.deepcopy(full), REMOVED)
    ratio = expected_flops(full, SMALL["seqlen"]) / expected_flops(cut, SMALL["seqlen"])
    assert pruned["ideal_speedup"] > 1
    assert pruned["ideal_speedup"] == pytest.approx(ratio)
    assert dense["flops_per_token"] == pytest.approx(expected_flops(full, SMALL["seqlen"]))

    selection = selection_cost({"windows": 8, "tokens": 2048, "seconds": 4.0, "tokens_per_second": 512.0},
                               ["lorp", "shortgpt", "streamline"])
    write_results(rows, tmp_path / "out" / "bench.json", tmp_path / "out" / "bench.csv", selection)
    written = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert list(written["models"].values()) == rows and written["selection_cost"] == selection
    table = pd.read_csv(tmp_path / "out" / "bench.csv")
    assert list(table["name"]) == ["dense", "pruned"] and list(table["blocks"]) == [6, 3]


def test_selection_cost():
    cost = selection_cost({"windows": 64, "tokens": 16384, "seconds": 30.0, "tokens_per_second": 546.1},
                          ["lorp", "shortgpt", "streamline", "sleb", "random"])
    assert cost["one_pass_seconds"] == 30.0 and cost["tokens_per_second"] == 546.1
    assert cost["methods"] == ["lorp", "shortgpt", "streamline"]  # sleb scores by forward passes, random by none
    assert cost["per_method_passes_seconds"] == 90.0 and cost["saving_factor"] == 3


def test_benchmark_refuses_too_long_windows(tmp_path):
    tiny_model("llama").save_pretrained(tmp_path / "dense")
    with pytest.raises(ValueError, match="positions"):
        benchmark([("dense", tmp_path / "dense")], **(SMALL | {"seqlen": 1000}))


SHORT = {"seqlen": 4, "prompt_len": 2, "new_tokens": 2}  # no longer than the tiny sliding window (4 tokens)


@pytest.mark.parametrize(("arch", "lengths", "timed"), [
    ("llama", {}, ["dense", "a", "a", "c"]),
    ("gemma3", {}, ["dense", "a", "b", "a"]),
    ("gemma3", SHORT, ["dense", "a", "a", "a"]),
])
def test_plans_of_one_architecture_are_timed_once(tmp_path, arch, lengths, timed):
    """Llama blocks are alike, so any two plans of one size have one config and share the timed row; Gemma-3's
    blocks differ by attention type (every third is global here), so removing a global block is another model,
    unless no timed sequence outgrows the sliding window: then every layer attends alike."""
    plans = {"a": [1, 2], "b": [3, 4], "c": [1, 2, 3] if arch == "llama" else [0, 2]}
    settings = SMALL | lengths | {"repeats": 1}
    longest = max(settings["seqlen"], settings["prompt_len"] + settings["new_tokens"])
    dense = tiny_model(arch)
    dense.save_pretrained(tmp_path / "dense")
    models = {"dense": (tmp_path / "dense", ())}
    for name, removed in plans.items():
        save(remove_blocks(copy.deepcopy(dense), removed), _NoTokenizer(), tmp_path / name, {"removed": removed})
        models[name] = (tmp_path / name, tuple(removed))
    rows = benchmark_plans(models, **settings)
    assert [r["measured_as"] for r in rows] == timed
    assert [r["name"] for r in rows] == list(models)
    for row, (folder, _) in zip(rows, models.values(), strict=True):
        assert row["checkpoint_bytes"] == checkpoint_bytes(folder)
        twin = rows[list(models).index(row["measured_as"])]
        assert row["prefill_tokens_per_s"] == twin["prefill_tokens_per_s"]
        assert architecture(folder, longest) == architecture(models[row["measured_as"]][0], longest)


def test_pairs_alternate_and_their_ratios_are_exact():
    """Functions that report their own seconds: each pair's ratio is exact, the order alternates (AB, BA, ...)
    so a drift of the machine's speed hits both members of every pair alike."""
    calls = []

    def timed(name: str, seconds: float):
        return lambda: calls.append(name) or seconds

    ratios, seconds = paired_ratios(timed("dense", 3.0), timed("pruned", 2.0), torch.device("cpu"), pairs=4,
                                    warmup=1)
    assert ratios == [1.5] * 4 and seconds == [2.0] * 4
    pairs = [["dense"] * BEST_OF + ["pruned"] * BEST_OF, ["pruned"] * BEST_OF + ["dense"] * BEST_OF]
    assert calls == ["dense", "pruned", *pairs[0], *pairs[1], *pairs[0], *pairs[1]]


def test_each_member_keeps_its_fastest_call():
    """An interrupted call (a competing process) only adds time: each pair member counts its fastest of BEST_OF."""
    def timed(times: list[float]):
        it = iter(times)
        return lambda: next(it)

    slow = [9.0, 3.0, 4.0] + [3.0, 3.0, 7.0]  # dense: two pairs, one interruption in each
    fast = [2.0, 2.0, 5.0] + [6.0, 2.0, 2.0]
    ratios, seconds = paired_ratios(timed(slow), timed(fast), torch.device("cpu"), pairs=2, warmup=0)
    assert BEST_OF == 3 and ratios == [1.5, 1.5] and seconds == [2.0, 2.0]


def test_pairs_are_added_only_where_the_interval_is_wide(monkeypatch):
    """A steady ratio stops at `repeats` pairs; a noisy one gets MORE_PAIRS at a time until its interval is within
    TARGET_SPREAD or MAX_PAIRS_FACTOR x repeats pairs were timed; the AB/BA alternation starts again with each
    batch of MORE_PAIRS (an even number, so as many of each order)."""
    def timed(times):
        it = iter(times)
        return lambda: next(it)

    steady = speedup_pairs(lambda: 2.0, lambda: 1.0, torch.device("cpu"), repeats=5, warmup=1)
    assert steady == ([2.0] * 5, [1.0] * 5)
    rng = np.random.default_rng(0)
    wild = list(rng.choice([0.5, 1.0, 2.0], size=1000))  # candidate seconds: ratios 4, 2, 1
    ratios, seconds = speedup_pairs(lambda: 2.0, timed(wild), torch.device("cpu"), repeats=5, warmup=0)
    assert len(ratios) == MAX_PAIRS_FACTOR * 5 and spread(ratios) > TARGET_SPREAD
    assert MORE_PAIRS % 2 == 0
    widths = iter([0.1, TARGET_SPREAD / 2])  # wide after the first 10 pairs, narrow after MORE_PAIRS more
    monkeypatch.setattr(bench, "spread", lambda values, seed=0: next(widths))
    ratios, _ = speedup_pairs(lambda: 2.0, lambda: 1.0, torch.device("cpu"), repeats=10, warmup=0)
    assert len(ratios) == 10 + MORE_PAIRS


def test_median_interval_brackets_the_median():
    values = [1.20, 1.25, 1.26, 1.27, 1.28, 1.30, 1.31, 1.40, 1.22, 1.27, 1.29]
    median, lo, hi = median_interval(values)
    assert median == 1.27 and min(values) <= lo <= median <= hi <= max(values)
    assert median_interval([2.0] * 5) == (2.0, 2.0, 2.0)


def test_make_bench_loaded_passes_every_flag_the_bench_stage_gets():
    """`make bench-loaded` repeats the bench stage's command line (it once lacked --csv and failed at once)."""
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["bench"]["do"]["cmd"]
    recipe = (REPO / "Makefile").read_text().split("\nbench-loaded:")[1].split("\n\n")[0]
    assert "stages/bench.py" in recipe
    assert set(re.findall(r"--[a-z-]+", stage)) <= set(re.findall(r"--[a-z-]+", recipe))
