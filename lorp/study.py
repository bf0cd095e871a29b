"""The study grid of one model, in memory: how much the selection depends on the calibration draw and on K.

Extra draws re-sample calibration (other seeds, sizes, corpora) and re-select from their own S; the K sweep
forces K on the default draw. The default draw is the pipeline's own (its S, clusters, plans and perplexities
are taken as given), so the study never contradicts the headline numbers. Every plan is scored on the dense
model with its blocks bypassed, each distinct block set once, and a set the headline already scored is not
scored again.
"""

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np

from lorp.data.calibration import sample
from lorp.data.corpora import corpus as check_corpus
from lorp.errors import LorpError
from lorp.evaluate import perplexity
from lorp.model.blocks import locate_blocks
from lorp.params.config import Params, check_force_k, loss_windows
from lorp.select.budgets import check_budgets
from lorp.select.cluster import cluster
from lorp.select.importance import block_importance
from lorp.select.methods import BY_MODEL, LOSS_BASED, plan_name
from lorp.select.plans import Inputs, plan
from lorp.select.rls import score
from lorp.select.similarity import block_input_similarity
from lorp.select.variants import variants_record

Blocks = frozenset[int]


class StudyError(LorpError, ValueError):
    """A study grid that cannot run, or a headline it cannot build on; refused before any calibration."""


class Headline(TypedDict):
    """The default draw as the pipeline computed it (S.npy, rls.json, clusters' labels, plans.json, ppl.json)."""

    s: np.ndarray
    rls: dict
    labels: Sequence[int]
    plans: list[dict]
    ppl: dict


def jaccard(a: Iterable[int], b: Iterable[int]) -> float:
    """|a & b| / |a | b|: 1.0 for the same blocks, 0.0 for disjoint ones (and 1.0 for two empty sets)."""
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 1.0


def seed_summary(draws: Sequence[dict]) -> dict[str, dict]:
    """Mean and sample std (ddof=1: the draws sample the possible calibrations) of each plan's average PPL over
    the default and seed draws; a plan needs two draws to have a spread, so none without seed draws."""
    pool = [d for d in draws if d["kind"] in ("default", "seed")]
    seeded = [d for d in pool if d["kind"] == "seed"]
    names = dict.fromkeys(name for d in seeded for name in d["plans"])
    summary = {}
    for name in names:
        values = [d["ppl"][name]["average"] for d in pool]
        summary[name] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)), "n": len(values),
                         "values": values}
    return summary


def ppl_row(values: Mapping[str, float]) -> dict[str, float]:
    """Per-dataset PPL and their mean, as evaluate writes a ppl.json row."""
    return {**values, "average": sum(values.values()) / len(values)}


def select(inputs: Inputs, methods: Sequence[str], budgets: Mapping[str, int]) -> dict[str, list[int]]:
    """{"<method>-<label>": removed blocks} for every method at every budget."""
    return {plan_name(m, label): plan(m, inputs, count)["removed"] for m in methods for label, count in budgets.items()}


def check(*, model_blocks: int, headline: Headline, eval_sets: Mapping[str, np.ndarray], budgets: Mapping[str, int],
          params: Params) -> None:
    """Every refusal the grid can meet, in seconds, before the first calibration draw."""
    num_blocks, grid, alloc = len(headline["s"]), params.study, params.allocate
    if model_blocks != num_blocks:
        raise StudyError(f"the headline S is {num_blocks} x {num_blocks} but the model has {model_blocks} blocks: "
                         "the headline is stale; rerun the pipeline")
    check_budgets(list(budgets.values()), num_blocks, protect_first=alloc.protect_first,
                  protect_last=alloc.protect_last)
    check_force_k(params.rls.force_k, num_blocks)
    for k in grid.ks:
        check_force_k(k, num_blocks, where="study.ks")
    if bad := [n for n in grid.n_samples if n < 2]:
        raise StudyError(f"study n_samples {bad}: a calibration draw needs at least 2 windows")
    for name in grid.corpora:
        check_corpus(name)
    if set(grid.methods) & {*LOSS_BASED, *BY_MODEL}:  # seed draws score the loss on their first windows
        loss_windows(range(params.calibration.n_samples), params.importance.samples)
    wanted = {plan_name(m, label): count for m in dict.fromkeys(["lorp", *grid.methods])
              for label, count in budgets.items()}
    have = {p["name"]: p for p in headline["plans"]}
    if missing := [n for n in wanted if n not in have or n not in headline["ppl"]["ppl"]]:
        raise StudyError(f"the headline plans.json / ppl.json lack {missing}: the study re-selects only methods and "
                         "budgets the pipeline ran (allocate.methods, allocate.budgets); rerun the pipeline")
    if wrong := [n for n, count in wanted.items() if have[n]["budget"] != count]:
        raise StudyError(f"the headline plans {wrong} remove another number of blocks than the study budgets "
                         f"{dict(budgets)}: the headline is stale; rerun the pipeline")
    windows = {ds: {"windows": int(len(ids)), "seqlen": int(ids.shape[1])} for ds, ids in eval_sets.items()}
    if headline["ppl"]["eval_windows"] != windows:
        raise StudyError(f"the headline ppl.json was measured on {headline['ppl']['eval_windows']}, the study "
                         f"evaluates on {windows}: its perplexities cannot be reused; rerun evaluate")


def evaluate(model, sets: Iterable[Blocks], eval_sets: Mapping[str, np.ndarray], known: Mapping[Blocks, dict],
             batch_size: int) -> tuple[dict[Blocks, dict], int, int]:
    """PPL rows of every distinct block set, known ones reused; (rows, evaluated, reused).

    One plan_perplexities call per dataset scores all the new sets together, sharing their common prefixes.
    """
    distinct = list(dict.fromkeys(sets))
    new = {",".join(map(str, sorted(b))): b for b in distinct if b not in known}
    scores = {ds: perplexity.plan_perplexities(model, ids, new, batch_size=batch_size, desc=f"study {ds}")
              for ds, ids in eval_sets.items()} if new else {}
    rows = {b: known[b] for b in distinct if b in known}
    rows |= {b: ppl_row({ds: scores[ds][key] for ds in eval_sets}) for key, b in new.items()}
    return rows, len(new), len(distinct) - len(new)


def run_study(model, tokenizer, *, model_key: str, headline: Headline, eval_sets: Mapping[str, np.ndarray],
              budgets: Mapping[str, int], params: Params, mirror: Path | None) -> dict:
    """reports/<model>/study.json: the default draw, the extra calibration draws, the K sweep, their perplexities.

    budgets maps a label ("p20") to the blocks it removes; params.calibration is the default draw's calibration,
    params.study the grid. The default draw lists LoRP's and the study methods' headline plans; seed draws
    re-select every study method (lorp_iter and lorp_kcal with the model on the draw's windows, their variants
    record kept in the draw), size and corpus draws LoRP alone; grid values equal to the default draw's are
    skipped. K sweep plans are LoRP's with K forced on the default S; rls_k marks the K the default draw used.
    """
    start = time.perf_counter()
    s = np.asarray(headline["s"])
    num_blocks = len(s)
    check(model_blocks=len(locate_blocks(model)[1]), headline=headline, eval_sets=eval_sets, budgets=budgets,
          params=params)
    cal, grid, alloc, imp = params.calibration, params.study, params.allocate, params.importance
    corpus, n_samples, seqlen, seed, methods = cal.corpus, cal.n_samples, cal.seqlen, cal.seed, grid.methods
    force_k, cluster_random_state = params.rls.force_k, params.cluster.random_state
    protect = {"protect_first": alloc.protect_first, "protect_last": alloc.protect_last}
    by_name = {p["name"]: p for p in headline["plans"]}
    draws = [{"kind": "default", "corpus": corpus, "n_samples": n_samples, "seed": seed,
              "rls": headline["rls"]["rls"], "k": headline["rls"]["k"], "labels": [int(x) for x in headline["labels"]],
              "plans": {plan_name(m, label): list(by_name[plan_name(m, label)]["removed"])
                        for m in dict.fromkeys(["lorp", *methods]) for label in budgets}}]

    def draw(kind: str, draw_corpus: str, draw_n: int, draw_seed: int, draw_methods: Sequence[str]) -> dict:
        ids, _ = sample(tokenizer, draw_corpus, draw_n, seqlen, draw_seed, mirror)
        sim = block_input_similarity(model, ids, batch_size=params.similarity.batch_size, progress=False)
        rls = score(sim.s, force_k=force_k)
        labels = cluster(sim.s, rls["k"], random_state=cluster_random_state)
        importance = None
        if loss := [m for m in draw_methods if m in LOSS_BASED]:
            importance = block_importance(model, loss_windows(ids, imp.samples),
                                          sleb_rounds=max(budgets.values()) if "sleb" in loss else 0,
                                          batch_size=imp.batch_size, **protect)
        variants = None
        if by_model := [m for m in draw_methods if m in BY_MODEL]:
            variants = variants_record(model, ids, loss_windows(ids, imp.samples), sim.s, methods=by_model,
                                       budgets=list(budgets.values()), ks=grid.ks, force_k=force_k,
                                       random_state=cluster_random_state, **protect,
                                       similarity_batch_size=params.similarity.batch_size,
                                       loss_batch_size=imp.batch_size)
        inputs = Inputs(sim.s, labels, sim.angular, importance, alloc.seed, **protect, variants=variants)
        plans = select(inputs, draw_methods, budgets)
        return {"kind": kind, "corpus": draw_corpus, "n_samples": draw_n, "seed": draw_seed, "rls": rls["rls"],
                "k": rls["k"], "labels": labels.tolist(), "plans": plans} | ({"variants": variants} if variants else {})

    calibration_start = time.perf_counter()
    draws += [draw("seed", corpus, n_samples, x, methods) for x in dict.fromkeys(grid.seeds) if x != seed]
    draws += [draw("size", corpus, x, seed, ["lorp"]) for x in dict.fromkeys(grid.n_samples) if x != n_samples]
    draws += [draw("corpus", x, n_samples, seed, ["lorp"]) for x in dict.fromkeys(grid.corpora) if x != corpus]
    k_sweep = []
    for k in dict.fromkeys(grid.ks):
        forced = select(Inputs(s, cluster(s, k, random_state=cluster_random_state), seed=alloc.seed, **protect),
                        ["lorp"], budgets)
        k_sweep += [{"k": k, "rls_k": k == headline["rls"]["k"], "label": label,
                     "blocks": forced[plan_name("lorp", label)]} for label in budgets]
    calibration_s = time.perf_counter() - calibration_start

    datasets = list(eval_sets)
    known = {frozenset(p["removed"]): {ds: row[ds] for ds in datasets} | {"average": row["average"]}
             for p in headline["plans"] if (row := headline["ppl"]["ppl"].get(p["name"])) is not None}
    sets = [frozenset(b) for d in draws for b in d["plans"].values()] + [frozenset(e["blocks"]) for e in k_sweep]
    evaluation_start = time.perf_counter()
    rows, evaluated, reused = evaluate(model, sets, eval_sets, known, params.evaluate.batch_size)
    evaluation_s = time.perf_counter() - evaluation_start

    default_plans = draws[0]["plans"]
    for d in draws:
        d["jaccard"] = {n: jaccard(b, default_plans[n]) for n, b in d["plans"].items()}
        d["ppl"] = {n: rows[frozenset(b)] for n, b in d["plans"].items()}
    for e in k_sweep:
        e["ppl"] = rows[frozenset(e["blocks"])]
    first = next(iter(eval_sets.values()))
    return {"model": model_key, "num_blocks": num_blocks,
            "eval": {"datasets": datasets, "windows": max(len(ids) for ids in eval_sets.values()),
                     "seqlen": int(first.shape[1])},
            "budgets": dict(budgets), "draws": draws, "seed_summary": seed_summary(draws), "k_sweep": k_sweep,
            "evaluated": evaluated, "reused": reused,
            "seconds": {"calibration": round(calibration_s, 3), "evaluation": round(evaluation_s, 3),
                        "total": round(time.perf_counter() - start, 3)}}
