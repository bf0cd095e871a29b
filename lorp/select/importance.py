"""Ground-truth block importance: calibration perplexity with blocks removed, computed fast and exactly.

Each candidate removal restarts the model's own forward at the candidate from one pass's recorded block
inputs (`lorp.model.forward`). `cached=False` is the plain forward under `skip_blocks`, the reference the cached path
is tested and benchmarked against.

Scores are perplexities over the calibration windows exactly as `lorp.evaluate.perplexity` computes them. Batches
are the outer loop, so the cache is one batch's block inputs (blocks x batch x seqlen x hidden), never all.
"""

import math
import time
from collections.abc import Callable, Iterable
from itertools import pairwise

import numpy as np
import torch
from tqdm.auto import tqdm

from lorp.errors import LorpError
from lorp.model.blocks import locate_blocks, skip_blocks
from lorp.model.forward import PROBE_TOKENS, Runner, batches, check_indices, perplexity, token_nll, tokens
from lorp.select.budgets import protected_blocks
from lorp.select.methods import selection_order


class ImportanceError(LorpError, ValueError):
    pass


def removable(n: int, protected: Iterable[int]) -> list[int]:
    protected = set(protected)
    check_indices(protected, n, "protected")
    return [b for b in range(n) if b not in protected]


def check_ids(ids: np.ndarray) -> None:
    if ids.ndim != 2 or ids.shape[1] < 2:
        raise ImportanceError(f"token ids must be n_windows x seqlen with seqlen >= 2, not shape {ids.shape}")


def removal_ppl(model, ids: np.ndarray, *, removed: set[int], extra: list[int | None], batch_size: int,
                cached: bool, desc: str) -> dict[int | None, float]:
    """{e: calibration PPL with removed | {e} gone} for e in extra (None: nothing more); one greedy round."""
    if not cached:
        scores = {}
        for e in tqdm(extra, desc=desc, unit="candidate"):
            gone = removed | ({e} - {None})
            with skip_blocks(model, gone):
                scores[e] = perplexity(model, ids, batch_size, desc=f"without {sorted(gone)}")["ppl"]
        return scores
    windows = batches(model, ids, batch_size)
    runner = Runner(model, windows[0][:1, :PROBE_TOKENS])
    nll = dict.fromkeys(extra, 0.0)
    with tqdm(total=len(windows) * len(extra), desc=desc, unit="run") as bar:
        for batch in windows:
            base, states = runner.run(batch, removed, capture=True)
            for e in extra:
                hidden = base if e is None else runner.run(batch, removed | {e}, start=e, state=states[e])[0]
                nll[e] += token_nll(model, hidden, batch)
                bar.update()
    return {e: math.exp(v / tokens(ids)) for e, v in nll.items()}


@torch.no_grad()
def ablation_curve(model, ids: np.ndarray, *, batch_size: int, protected: Iterable[int] = (),
                   cached: bool = True) -> dict:
    """One-shot PPL criterion (Shortened LLaMA): PPL with each unprotected block removed alone.

    {"dense_ppl": float, "ppl": [float | None per block, None where protected], "seconds": float}.
    """
    check_ids(ids)
    start = time.perf_counter()
    n = len(locate_blocks(model)[1])
    scores = removal_ppl(model, ids, removed=set(), extra=[None, *removable(n, protected)], batch_size=batch_size,
                         cached=cached, desc="oneshot_ppl")
    return {"dense_ppl": scores[None], "ppl": [scores.get(b) for b in range(n)],
            "seconds": round(time.perf_counter() - start, 3)}


@torch.no_grad()
def sleb_order(model, ids: np.ndarray, *, rounds: int, batch_size: int, protected: Iterable[int] = (),
               cached: bool = True, first_round: dict | None = None) -> dict:
    """SLEB greedy: each round removes the block whose removal, after those already gone, gives the lowest PPL.

    Greedy plans are nested: the plan for budget k is order[:k]. Ties go to the lower block index. Round 1 is the
    ablation curve: pass ablation_curve's result as first_round (same protected blocks) to skip recomputing it.
    {"order": [block per round], "ppl": [PPL after each round], "dense_ppl": float, "seconds": float}.
    """
    check_ids(ids)
    start = time.perf_counter()
    candidates = removable(len(locate_blocks(model)[1]), protected)
    if not 0 < rounds <= len(candidates):
        raise ImportanceError(f"rounds must be 1..{len(candidates)} (the unprotected blocks), not {rounds}")
    order, ppls, dense = [], [], None
    for r in range(rounds):
        extra = [b for b in candidates if b not in order]
        if r == 0 and first_round is not None:
            scores = {None: first_round["dense_ppl"]} | {b: first_round["ppl"][b] for b in extra}
        else:
            scores = removal_ppl(model, ids, removed=set(order), extra=[None, *extra] if r == 0 else extra,
                                 batch_size=batch_size, cached=cached, desc=f"sleb round {r + 1}/{rounds}")
        dense = scores.pop(None, dense)
        best = min(scores, key=scores.get)
        order.append(best)
        ppls.append(scores[best])
    return {"order": order, "ppl": ppls, "dense_ppl": dense, "seconds": round(time.perf_counter() - start, 3)}


def growing_sets(order: list[int]) -> list[frozenset[int]]:
    """The cumulative removal set after each block of order."""
    return [frozenset(order[:k + 1]) for k in range(len(order))]


def cumulative_ppl(model, ids: np.ndarray, orders: list[list[int]], batch_size: int) -> dict[frozenset, float]:
    """PPL of the dense model and of every distinct cumulative removal set of the orders, each set computed once.

    A set resumes at its newest block from the recorded states of the first set seen one block before it:
    exact, since adding block b leaves the input of every block <= b as it was. Sets are walked depth first,
    so only one chain of recorded states is alive at a time.
    """
    dense = frozenset()
    children: dict[frozenset, list[frozenset]] = {dense: []}
    newest: dict[frozenset, int] = {}
    for order in orders:
        for before, after in pairwise([dense, *growing_sets(order)]):
            if after not in children:  # a repeated block leaves the set unchanged: nothing new
                (newest[after],) = after - before
                children[before].append(after)
                children[after] = []
    windows = batches(model, ids, batch_size)
    runner = Runner(model, windows[0][:1, :PROBE_TOKENS])
    nll = dict.fromkeys(children, 0.0)
    with tqdm(total=len(windows) * len(nll), desc="marginal_costs", unit="run") as bar:
        for batch in windows:
            hidden, states = runner.run(batch, capture=True)
            nll[dense] += token_nll(model, hidden, batch)
            bar.update()
            pending = [(s, states) for s in children[dense]]
            while pending:
                s, before = pending.pop()
                b = newest[s]
                hidden, captured = runner.run(batch, s, start=b, state=before[b], capture=bool(children[s]))
                nll[s] += token_nll(model, hidden, batch)
                bar.update()
                after = before | captured
                pending.extend((child, after) for child in children[s])
    return {s: math.exp(v / tokens(ids)) for s, v in nll.items()}


def cost_curve(ppl: dict[frozenset, float], order: list[int]) -> dict:
    """The PPL after removing order[:1], order[:2], ... and each step's marginal cost, from {set: PPL}."""
    curve = [ppl[s] for s in growing_sets(order)]
    dense = ppl[frozenset()]
    return {"dense_ppl": dense, "ppl": curve, "cost": [b - a for a, b in pairwise([dense, *curve])]}


@torch.no_grad()
def marginal_costs(model, ids: np.ndarray, *, order: list[int], batch_size: int, cached: bool = True) -> dict:
    """PPL after removing order[:1], order[:2], ... cumulatively, and each block's marginal PPL cost.

    A block repeated in order leaves the set unchanged: its step is not recomputed and costs 0.
    {"dense_ppl": float, "ppl": [len(order)], "cost": [ppl[k] - ppl[k-1], ppl[-1] being dense], "seconds"}.
    """
    check_ids(ids)
    check_indices(order, len(locate_blocks(model)[1]), "order")
    start = time.perf_counter()
    if cached:
        ppl = cumulative_ppl(model, ids, [order], batch_size)
    else:
        ppl = {}
        for s in tqdm(list(dict.fromkeys([frozenset(), *growing_sets(order)])), desc="marginal_costs", unit="plan"):
            with skip_blocks(model, s):
                ppl[s] = perplexity(model, ids, batch_size, desc=f"without {sorted(s)}")["ppl"]
    return cost_curve(ppl, order) | {"seconds": round(time.perf_counter() - start, 3)}


def timed_pair(score: Callable[[bool], dict]) -> tuple[dict, dict]:
    """Naive vs cached seconds of one scoring call and whether both agree (1e-5 relative); the cached scores."""
    times, results = {}, {}
    for cached in (False, True):
        start = time.perf_counter()
        results[cached] = score(cached)
        times[cached] = time.perf_counter() - start
    same = all(math.isclose(results[False][k], results[True][k], rel_tol=1e-5) for k in results[True])
    return {"naive_s": round(times[False], 3), "cached_s": round(times[True], 3),
            "speedup": round(times[False] / times[True], 2), "identical": same}, results[True]


@torch.no_grad()
def speedup_benchmark(model, ids: np.ndarray, *, batch_size: int, protected: Iterable[int] = ()) -> dict:
    """Naive vs cached time of the one-shot ablation curve and of SLEB's second round (one block already gone)."""
    check_ids(ids)
    candidates = removable(len(locate_blocks(model)[1]), protected)
    if len(candidates) < 2:
        raise ImportanceError("the benchmark needs at least two unprotected blocks")

    def oneshot(cached: bool) -> dict:
        return removal_ppl(model, ids, removed=set(), extra=[None, *candidates], batch_size=batch_size,
                           cached=cached, desc="oneshot_ppl")

    oneshot_timing, curve = timed_pair(oneshot)
    first = min(candidates, key=curve.get)

    def second_round(cached: bool) -> dict:
        return removal_ppl(model, ids, removed={first}, extra=[b for b in candidates if b != first],
                           batch_size=batch_size, cached=cached, desc="sleb round 2")

    return {"oneshot_ppl": oneshot_timing, "sleb_round": timed_pair(second_round)[0]}


def block_importance(model, ids: np.ndarray, *, sleb_rounds: int, batch_size: int, protect_first: bool,
                     protect_last: bool) -> dict:
    """The record sleb and oneshot_ppl select from, and the report's ground truth of block importance:
    the single-block ablation curve, and SLEB's greedy order when sleb_rounds > 0."""
    n = len(locate_blocks(model)[1])
    protected = sorted(protected_blocks(n, protect_first, protect_last))
    curve = ablation_curve(model, ids, batch_size=batch_size, protected=protected)
    record = {"samples": int(ids.shape[0]), "seqlen": int(ids.shape[1]), "protected": protected,
              "dense_ppl": curve["dense_ppl"], "ablation_ppl": curve["ppl"],
              "seconds": {"oneshot_ppl": curve["seconds"]}}
    if sleb_rounds:
        greedy = sleb_order(model, ids, rounds=sleb_rounds, batch_size=batch_size, protected=protected,
                            first_round=curve)
        record |= {"sleb_order": greedy["order"], "sleb_ppl": greedy["ppl"]}
        record["seconds"]["sleb"] = greedy["seconds"]
    return record


@torch.no_grad()
def plan_costs(model, ids: np.ndarray, *, plans: list[dict], batch_size: int) -> dict:
    """Every plan's marginal costs, its blocks removed in the order its method chose them.

    Every distinct cumulative set across all plans is computed once: plans of one method at two budgets share
    prefixes, identical plans share everything. Each row's seconds are those of that one shared computation.
    """
    check_ids(ids)
    orders = {p["name"]: selection_order(p) for p in plans}
    check_indices([b for order in orders.values() for b in order], len(locate_blocks(model)[1]), "order")
    start = time.perf_counter()
    ppl = cumulative_ppl(model, ids, list(orders.values()), batch_size)
    seconds = round(time.perf_counter() - start, 3)
    rows = {name: {"order": order, **cost_curve(ppl, order), "seconds": seconds} for name, order in orders.items()}
    return {"samples": int(ids.shape[0]), "seqlen": int(ids.shape[1]), "dense_ppl": ppl[frozenset()], "plans": rows}
