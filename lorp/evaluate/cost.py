"""The forward-pass work the study's compute-bound stages did, counted from their own records, next to the time
they took and this machine's matmul rate: is a stage slow because of its work or because of how it runs?

Work is matmul FLOPs (`lorp.evaluate.flops`) of exactly the passes the cached code makes: a dense pass that records
block inputs, then each removal set resumed at its first removed block (SLEB's rounds and the cumulative sets at the
candidate or newest block), the LM head once per scored pass. The 8-token probe every run starts with is left out.
Useful attention FLOPs by default (masked=False), so work / matmul rate is a lower bound on a stage's time.
zeroshot is not counted: its work is lm-eval's request lengths and padding, which no record keeps.

Usage: lorp cost <model key> [...] --out reports/bench/compute.json (the last step of make bench)
"""

import time
from collections.abc import Collection, Iterable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

import torch

from lorp.errors import LorpError
from lorp.evaluate.flops import flops_per_token
from lorp.io import read_json, require_outputs, write_json
from lorp.model.load import load_model, num_blocks
from lorp.select.importance import growing_sets, removable
from lorp.select.methods import plan_name

Blocks = Collection[int]
# What stage_work reads, under data/<key>/ and reports/results/<key>/.
DATA_RECORDS = ("importance/importance.json", "importance/marginal.json", "similarity/timing.json", "plans.json")
RESULT_RECORDS = ("ppl.json", "study.json")


class CostError(LorpError, ValueError):
    """Records this count cannot read, refused before the model loads."""


class Unit(NamedTuple):
    """FLOPs per token of one block (the blocks' mean: they differ only where a sliding window binds) and of the
    LM head."""

    block: float
    head: float


def unit(model, seqlen: int, *, masked: bool = False) -> Unit:
    """Per-token FLOPs at seqlen; masked=True counts what eager attention computes (FlopCounterMode's count)."""
    head = 2 * model.get_output_embeddings().weight.numel()
    return Unit((flops_per_token(model, seqlen, masked=masked) - head) / num_blocks(model.config), head)


def blocks_run(n: int, removed: Blocks, start: int = 0) -> int:
    """Blocks a forward resumed at block `start` computes with `removed` bypassed."""
    return sum(1 for b in range(start, n) if b not in removed)


def pass_flops(u: Unit, blocks: int, heads: int, windows: int, seqlen: int) -> float:
    """`blocks` block passes over every token and `heads` LM-head passes over the predicted ones (all but each
    window's first, as lorp.model.forward.token_nll scores them)."""
    return windows * (seqlen * blocks * u.block + (seqlen - 1) * heads * u.head)


def plans_flops(u: Unit, n: int, sets: Iterable[Blocks], windows: int, seqlen: int,
                recovered: Iterable[tuple[Blocks, int]] = ()) -> float:
    """lorp.evaluate.perplexity.plan_perplexities: one dense pass, the head for the dense set if asked, every distinct
    non-empty set resumed at its first removed block, and every recovered plan (removed, start) at its first changed
    block (lorp.model.patches.first_changed_block: one before its first run for linear, 0 for LoRA)."""
    distinct = set(map(frozenset, sets))
    resumed = [(s, min(s)) for s in distinct if s] + [(frozenset(s), start) for s, start in recovered]
    return pass_flops(u, n + sum(blocks_run(n, s, start) for s, start in resumed),
                      len(resumed) + (frozenset() in distinct), windows, seqlen)


def ablation_flops(u: Unit, n: int, protected: Blocks, windows: int, seqlen: int) -> float:
    """lorp.select.importance.ablation_curve: the dense model and each unprotected block removed alone."""
    return plans_flops(u, n, [(), *([b] for b in removable(n, protected))], windows, seqlen)


def sleb_flops(u: Unit, n: int, order: Sequence[int], protected: Blocks, windows: int, seqlen: int) -> float:
    """lorp.select.importance.sleb_order's rounds after the first (the ablation curve): per round a pass without the
    blocks already gone, then each remaining candidate resumed at itself."""
    total, unprotected = 0.0, removable(n, protected)
    for r in range(1, len(order)):
        gone = set(order[:r])
        candidates = [e for e in unprotected if e not in gone]
        blocks = blocks_run(n, gone) + sum(blocks_run(n, gone | {e}, e) for e in candidates)
        total += pass_flops(u, blocks, len(candidates), windows, seqlen)
    return total


def cumulative_flops(u: Unit, n: int, orders: Iterable[Sequence[int]], windows: int, seqlen: int) -> float:
    """lorp.select.importance.cumulative_ppl: the dense model, then each distinct cumulative set resumed at its newest
    block (the block that first made it)."""
    newest: dict[frozenset, int] = {}
    for order in orders:
        for before, after in pairwise([frozenset(), *growing_sets(list(order))]):
            if after != before:
                newest.setdefault(after, next(iter(after - before)))
    return pass_flops(u, n + sum(blocks_run(n, s, b) for s, b in newest.items()), 1 + len(newest), windows, seqlen)


def similarity_flops(u: Unit, n: int, windows: int, seqlen: int, hidden: int) -> float:
    """lorp.select.similarity.block_input_similarity: one pass through every block, no head, and the n x n Gram matrices
    of the block inputs (every token for S, each window's last for A)."""
    return pass_flops(u, n, 0, windows, seqlen) + windows * (seqlen + 1) * 2 * n * n * hidden


def variants_flops(u: Unit, n: int, hidden: int, record: dict) -> float:
    """lorp.select.variants.variants_record: lorp_iter's dense pass recording block inputs, then each chosen set it
    measured resumed at its first block, with the Gram matrices of the blocks left; lorp_kcal's cumulative sets
    along every K's LoRP order on its loss windows. u: the per-token unit at the calibration windows' length."""
    total = 0.0
    if (iterative := record.get("lorp_iter")) and (measured := iterative["measured"]):
        windows, seqlen = iterative["windows"], iterative["seqlen"]
        total += pass_flops(u, n + sum(blocks_run(n, c, min(c)) for c in measured), 0, windows, seqlen)
        total += sum(windows * seqlen * 2 * (n - len(c)) ** 2 * hidden for c in measured)
    if kcal := record.get("lorp_kcal"):
        orders = [k["order"] for p in kcal["plans"].values() for k in p["by_k"].values()]
        total += cumulative_flops(u, n, orders, kcal["samples"], kcal["seqlen"])
    return total


def study_flops(study: dict, n: int, hidden: int, *, calibration: tuple[Unit, int], evaluation: tuple[Unit, int],
                loss_windows: int, eval_windows: int, known: Iterable[Blocks], protected: Blocks) -> float:
    """lorp.study.run_study: a similarity pass per extra draw, the ablation curve on its first loss_windows where
    a draw selects by it, the variants it re-selected with the model in the loop (its variants record), and the
    evaluation of every block set the headline did not score. calibration and evaluation are (per-token unit, seqlen)
    of the calibration and the evaluation windows."""
    (u_cal, cal_seqlen), (u_eval, eval_seqlen) = calibration, evaluation
    total = 0.0
    for d in study["draws"][1:]:
        total += similarity_flops(u_cal, n, d["n_samples"], cal_seqlen, hidden)
        if any(name.startswith(plan_name("sleb", "")) for name in d["plans"]):
            raise CostError("the study re-selected SLEB on an extra draw, whose greedy order it does not record: "
                             "its rounds cannot be counted")
        if any(name.startswith(plan_name("oneshot_ppl", "")) for name in d["plans"]):
            total += ablation_flops(u_cal, n, protected, loss_windows, cal_seqlen)
        total += variants_flops(u_cal, n, hidden, d.get("variants", {}))
    new = {frozenset(b) for d in study["draws"] for b in d["plans"].values()}
    new |= {frozenset(e["blocks"]) for e in study["k_sweep"]}
    new -= set(map(frozenset, known))
    return total + (plans_flops(u_eval, n, new, eval_windows, eval_seqlen) if new else 0.0)


def recovered_starts(results: Path) -> list[tuple[Blocks, int]]:
    """(removed, the block its forward resumes at) of each distinct recovered plan the evaluate stage scored, as
    recovery.json records them (plans of equal blocks share one linear fit and one evaluation)."""
    record = read_json(results / "recovery.json") if (results / "recovery.json").exists() else {"plans": {}}
    return [(frozenset(row["removed"]), row["resumes_at"]) for row in record["plans"].values()
            if not row.get("same_fit_as")]


def stage_work(model, data: Path, results: Path) -> dict[str, dict]:
    """{stage: {"flops", "seconds"}} of one model's compute-bound stages, from data/<key>/ and
    reports/results/<key>/ (seconds: each record's own timing of its computation)."""
    n, hidden = num_blocks(model.config), model.config.get_text_config().hidden_size
    imp = read_json(data / "importance/importance.json")
    sim = read_json(data / "similarity/timing.json")
    marginal = read_json(data / "importance/marginal.json")
    ppl = read_json(results / "ppl.json")
    study = read_json(results / "study.json")
    plans = read_json(data / "plans.json")
    cal_seqlen = sim["tokens"] // sim["windows"]  # the loss windows are the first calibration windows
    (eval_seqlen, *other) = sorted({w["seqlen"] for w in ppl["eval_windows"].values()})
    if other:
        raise CostError(f"evaluation windows of lengths {[eval_seqlen, *other]}: evaluate cuts one length")
    eval_windows = sum(w["windows"] for w in ppl["eval_windows"].values())
    u_cal, u_eval = unit(model, cal_seqlen), unit(model, eval_seqlen)
    loss = (imp["samples"], cal_seqlen)
    protected, sets = imp["protected"], [(), *(p["removed"] for p in plans)]
    orders = [r["order"] for r in marginal["plans"].values()]
    work = {
        "extract_similarities": (similarity_flops(u_cal, n, sim["windows"], cal_seqlen, hidden), sim["seconds"]),
        "score_blocks": (ablation_flops(u_cal, n, protected, *loss)
                         + sleb_flops(u_cal, n, imp.get("sleb_order", []), protected, *loss),
                         sum(imp["seconds"].values())),
        "marginal_cost": (cumulative_flops(u_cal, n, orders, *loss),
                          max(r["seconds"] for r in marginal["plans"].values())),
        "evaluate": (plans_flops(u_eval, n, sets, eval_windows, eval_seqlen, recovered_starts(results)),
                     ppl["seconds"]),
        "study": (study_flops(study, n, hidden, calibration=(u_cal, cal_seqlen), evaluation=(u_eval, eval_seqlen),
                              loss_windows=imp["samples"], eval_windows=eval_windows, known=sets,
                              protected=protected),
                  study["seconds"]["total"]),
    }
    variants = read_json(data / "variants.json") if (data / "variants.json").exists() else {}
    if flops := variants_flops(u_cal, n, hidden, variants):  # absent, or nothing that ran the model
        work["select_variants"] = (flops, sum(r["seconds"] for r in variants.values() if isinstance(r, dict)))
    return {stage: {"flops": flops, "seconds": seconds} for stage, (flops, seconds) in work.items()}


def matmul_rate(device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 20) -> float:
    """FLOP/s of the fastest of `repeats` size^3 matmuls in the models' dtype on their device, after a warm-up.

    The fastest, not the median: a shared machine's speed drifts by tens of percent within minutes, and a floor
    needs the best the machine does."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    a @ b
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def measure(models: dict[str, tuple[str, str]], out: str | Path) -> dict:
    """Count, time and write reports/bench/compute.json for models {key: (dtype, device)} of this project's
    pipeline (models/<key>/dense and its records, as dvc repro left them)."""
    folders = {key: (Path("models") / key / "dense", Path("data") / key, Path("reports/results") / key)
               for key in models}
    for key, (model, data, results) in folders.items():
        require_outputs(key, [model, *(data / r for r in DATA_RECORDS), *(results / r for r in RESULT_RECORDS)])
    record, rates, floor, spent = {}, {}, 0.0, 0.0
    print(f"{'model':>10} {'stage':>22} {'TFLOP':>7} {'took s':>7} {'GFLOP/s':>8} {'floor s':>8}")
    for key, (folder, data, results) in folders.items():
        dtype, device = models[key]
        model = load_model(folder, dtype=dtype, device=device)
        first = next(model.parameters())
        if (first.device, first.dtype) not in rates:
            rates[first.device, first.dtype] = matmul_rate(first.device, first.dtype)
        rate = rates[first.device, first.dtype]
        stages = stage_work(model, data, results)
        for stage, row in stages.items():
            row |= {"achieved_gflops": row["flops"] / row["seconds"] / 1e9, "floor_s": row["flops"] / rate}
            floor, spent = floor + row["floor_s"], spent + row["seconds"]
            print(f"{key:>10} {stage:>22} {row['flops'] / 1e12:7.2f} {row['seconds']:7.1f} "
                  f"{row['achieved_gflops']:8.1f} {row['floor_s']:8.1f}")
        record[key] = {"matmul_gflops": rate / 1e9, "device": str(first.device), "dtype": str(first.dtype),
                       "threads": torch.get_num_threads(), "stages": stages}
        print(f"{key:>10} matmul {rate / 1e9:.1f} GFLOP/s ({first.dtype} on {first.device})")
    print(f"together: took {spent / 60:.1f} min; at the matmul rate no less than {floor / 60:.1f} min")
    result = {"models": record, "took_s": spent, "floor_s": floor}
    write_json(out, result)
    return result
