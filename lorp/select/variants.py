"""The two LoRP variants the paper leaves as future work; both select with the model in the loop.

lorp_iter (iterative LoRP) at budget n: chosen = []. Until n blocks are chosen: S_t = the block-input similarity of
the blocks not chosen, measured on the model with `chosen` removed (step 1: the given S, the pipeline's S.npy, so
step 1 is LoRP's own input); RLS and K from it (`rls.score`, rls.force_k honoured); spectral clusters
(`cluster`, cluster.random_state); LoRP's allocation (`allocate.lorp`) on S_t with the remaining budget
n - len(chosen) and the protection flags (a protected first or last block is never chosen, so it stays first or
last of the remaining ones); of that selection, commit the one block of highest member redundancy r (ties: the
shallower), numbered as in the original model. Each step records the committed block, K and RLS. At budget 1 it is
LoRP by construction: one step, on LoRP's S, K and clusters.

Re-measuring is cheap where it can be: the state entering a block before the first chosen block is the dense
model's. One dense pass records the inputs of the blocks up to the deepest first commit of any budget (no later
min(chosen) is deeper); each S_t resumes the model's own forward (`lorp.model.forward.Runner`) at min(chosen) from
them. A chosen set is measured once, whichever budgets reach it. The price is memory: the recorded inputs are
(depth + 1) x windows x seqlen x hidden values (SmolLM2, 64 x 256 float32 windows, first commit block 27: 1.06 GB).

lorp_kcal at budget n: LoRP with K chosen by calibration loss instead of the RLS table. For each K of study.ks the
model allows (2 <= K <= N): labels = cluster(S, K), plan = allocate.lorp(S, labels, n); the K whose plan has the
lowest perplexity on the importance windows wins (ties: the K LoRP itself uses, forced or from the RLS table, if
among them, else the smallest). The perplexities come from `lorp.select.importance.cumulative_ppl` along each plan's
LoRP selection order: one dense pass for every K and budget, and, LoRP being greedy, budget n's order is a prefix of
a larger budget's for the same K, so the budgets share their passes.

Seconds on the 2-core CPU (shared, so loose), float32, 64 x 256 calibration windows, importance.samples 4, study.ks
2-6: SmolLM2 (30 blocks, budgets 6 and 8): lorp_iter 111 s (8 chosen sets measured, beside the one S pass of 34 s),
lorp_kcal 51 s (39 removal sets). Gemma-3-270M (18 blocks, budgets 4 and 5): lorp_iter 204 s (4 sets; the machine
was busier), lorp_kcal 61 s.
"""

import functools
import time
from collections.abc import Callable, Collection

import numpy as np
import torch

from lorp.errors import LorpError
from lorp.model.blocks import locate_blocks
from lorp.model.forward import PROBE_TOKENS, Runner, batches
from lorp.select.allocate import lorp
from lorp.select.cluster import cluster
from lorp.select.importance import cumulative_ppl
from lorp.select.rls import score
from lorp.select.similarity import finalize, window_similarity

Measure = Callable[[frozenset[int]], np.ndarray]  # chosen blocks -> S of the others on the model without them
Scorer = Callable[[list[list[int]]], dict[frozenset, float]]  # removal orders -> {their full sets: PPL}


class VariantError(LorpError, ValueError):
    """A variant that cannot run with these parameters; the message names the parameter to change."""


def commit(s: np.ndarray, budget: int, *, force_k: int | None, random_state: int, protect_first: bool,
           protect_last: bool) -> tuple[int, dict]:
    """One lorp_iter step on S of the remaining blocks: (the row of S to remove, {"k", "rls"})."""
    rls = score(s, force_k=force_k)
    if rls["k"] > len(s):
        raise VariantError(f"lorp_iter: K={rls['k']} clusters for the {len(s)} blocks left: lower rls.force_k or "
                           "the budgets")
    selected, scores = lorp(s, cluster(s, rls["k"], random_state), budget, protect_first, protect_last)
    r = scores["member_redundancy"]
    return max(selected, key=lambda i: (r[i], -i)), {"k": rls["k"], "rls": rls["rls"]}


def iterative(s: np.ndarray, measure: Measure, budget: int, **rule) -> dict:
    """lorp_iter's plan at one budget: {"removed": sorted, "steps": [{"block", "k", "rls"} in commit order]}."""
    chosen: list[int] = []
    steps = []
    while len(chosen) < budget:
        remaining = [b for b in range(len(s)) if b not in chosen]
        index, step = commit(measure(frozenset(chosen)) if chosen else s, budget - len(chosen), **rule)
        chosen.append(remaining[index])
        steps.append({"block": remaining[index], **step})
    return {"removed": sorted(chosen), "steps": steps}


def remeasure(model, ids: np.ndarray, batch_size: int, depth: int) -> tuple[Measure, list[list[int]]]:
    """(measure, the sets it measured so far): S of the blocks not chosen, on the model without the chosen ones.

    The inputs of blocks 0..depth are recorded by one dense pass at the first call; every chosen set must have
    min(chosen) <= depth. Each set is measured once.
    """
    windows = batches(model, ids, batch_size)
    n = len(locate_blocks(model)[1])
    measured: list[list[int]] = []

    @functools.cache
    @torch.no_grad()
    def runner_and_prefix() -> tuple[Runner, list[list[torch.Tensor]]]:
        runner = Runner(model, windows[0][:1, :PROBE_TOKENS])
        prefix = []
        for batch in windows:
            states = runner.run(batch, capture=True)[1]
            prefix.append([states[b] for b in range(depth + 1)])
        return runner, prefix

    @functools.cache
    @torch.no_grad()
    def measure(chosen: frozenset[int]) -> np.ndarray:
        start = min(chosen)
        if start > depth:
            raise VariantError(f"lorp_iter: blocks {sorted(chosen)} start after block {depth}, the last recorded")
        runner, prefix = runner_and_prefix()
        total = torch.zeros(n - len(chosen), n - len(chosen), dtype=torch.float64, device=windows[0].device)
        for batch, before in zip(windows, prefix, strict=True):
            after = runner.run(batch, chosen, start=start, state=before[start], capture=True)[1]
            states = before[:start] + [after[b] for b in range(start, n) if b not in chosen]
            total += window_similarity(states).double().sum(dim=0)
        measured.append(sorted(chosen))
        return finalize(total, len(ids))

    return measure, measured


def k_by_loss(s: np.ndarray, budgets: Collection[int], ks: Collection[int], ppl: Scorer, *, rls_k: int,
              random_state: int, protect_first: bool, protect_last: bool) -> dict[str, dict]:
    """lorp_kcal's plan per budget {"<n>": {"removed", "k", "steps", "by_k": {"<K>": {"order", "ppl"}}}}."""
    valid = [k for k in dict.fromkeys(ks) if 2 <= k <= len(s)]
    if not valid:
        raise VariantError(f"lorp_kcal: no K of study.ks {list(ks)} clusters {len(s)} blocks: give K in 2..{len(s)}")
    labels = {k: cluster(s, k, random_state) for k in valid}
    steps = {(n, k): lorp(s, labels[k], n, protect_first, protect_last)[1]["steps"] for n in budgets for k in valid}
    orders = {key: [step["block"] for step in value] for key, value in steps.items()}
    scores = ppl(list(orders.values()))
    plans = {}
    for n in dict.fromkeys(budgets):
        by_k = {k: scores[frozenset(orders[n, k])] for k in valid}
        best = min(valid, key=lambda k: (by_k[k], k != rls_k, k))
        plans[str(n)] = {"removed": sorted(orders[n, best]), "k": best, "steps": steps[n, best],
                         "by_k": {str(k): {"order": orders[n, k], "ppl": by_k[k]} for k in valid}}
    return plans


@torch.no_grad()
def variants_record(model, calibration_ids: np.ndarray, loss_ids: np.ndarray, s: np.ndarray, *,
                    methods: Collection[str], budgets: Collection[int], ks: Collection[int], force_k: int | None,
                    random_state: int, protect_first: bool, protect_last: bool, similarity_batch_size: int,
                    loss_batch_size: int) -> dict:
    """{"lorp_iter": {...}, "lorp_kcal": {...}} for the variants among methods (an empty record for none), each
    with "plans" keyed by the budget's block count ("6"), as the selectors of `lorp.select.plans` read them."""
    rule = {"random_state": random_state, "protect_first": protect_first, "protect_last": protect_last}
    budgets = sorted(set(budgets))
    record = {}
    if "lorp_iter" in methods:
        start = time.perf_counter()
        depth = max(commit(s, n, force_k=force_k, **rule)[0] for n in budgets)  # the deepest first commit
        measure, measured = remeasure(model, calibration_ids, similarity_batch_size, depth)
        plans = {str(n): iterative(s, measure, n, force_k=force_k, **rule) for n in budgets}
        record["lorp_iter"] = {"num_blocks": len(s), "windows": int(len(calibration_ids)),
                               "seqlen": int(calibration_ids.shape[1]), "prefix_blocks": depth + 1,
                               "measured": measured, "plans": plans, "seconds": round(time.perf_counter() - start, 3)}
    if "lorp_kcal" in methods:
        start = time.perf_counter()
        rls_k = score(s, force_k=force_k)["k"]
        loss = functools.partial(cumulative_ppl, model, loss_ids, batch_size=loss_batch_size)
        plans = k_by_loss(s, budgets, ks, loss, rls_k=rls_k, **rule)
        record["lorp_kcal"] = {"num_blocks": len(s), "samples": int(len(loss_ids)), "seqlen": int(loss_ids.shape[1]),
                               "rls_k": rls_k, "plans": plans, "seconds": round(time.perf_counter() - start, 3)}
    return record
