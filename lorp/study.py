"""The study grid of one model, in memory: how much the selection depends on the calibration draw and on K.

Extra draws re-sample calibration (other seeds, sizes, corpora) and re-select from their own S; the K sweep
forces K on the default draw. The default draw is the pipeline's own (its S, clusters, plans and perplexities
are taken as given), so the study never contradicts the headline numbers. Every plan is scored on the dense
model with its blocks bypassed, each distinct block set once, and a set the headline already scored is not
scored again.
"""

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TypedDict

import numpy as np

from lorp import data, perplexity
from lorp import params as P
from lorp.allocate import plan
from lorp.blocks import locate_blocks
from lorp.calibration import sample
from lorp.cluster import cluster
from lorp.errors import LorpError
from lorp.importance import LOSS_METHODS, block_importance
from lorp.rls import score
from lorp.similarity import block_input_similarity

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


def plan_name(method: str, label: str) -> str:
    """"<method>-<label>", as plans.json names a plan ("lorp-p20")."""
    return f"{method}-{label}"


def ppl_row(values: Mapping[str, float]) -> dict[str, float]:
    """Per-dataset PPL and their mean, as evaluate writes a ppl.json row."""
    return {**values, "average": sum(values.values()) / len(values)}


def select(s: np.ndarray, labels: np.ndarray, methods: Sequence[str], budgets: Mapping[str, int], *,
           protect_first: bool, protect_last: bool, angular: np.ndarray | None = None,
           importance: dict | None = None, random_seed: int) -> dict[str, list[int]]:
    """{"<method>-<label>": removed blocks} for every method at every budget."""
    return {plan_name(m, label): plan(m, s, count, labels, protect_first, protect_last, angular=angular,
                                      importance=importance, seed=random_seed)["removed"]
            for m in methods for label, count in budgets.items()}


def check(*, num_blocks: int, model_blocks: int, headline: Headline, eval_sets: Mapping[str, np.ndarray],
          budgets: Mapping[str, int], methods: Sequence[str], ks: Sequence[int], n_samples_grid: Sequence[int],
          corpora: Sequence[str], n_samples: int, force_k: int | None, protect_first: bool, protect_last: bool,
          importance_samples: int) -> None:
    """Every refusal the grid can meet, in seconds, before the first calibration draw."""
    if model_blocks != num_blocks:
        raise StudyError(f"the headline S is {num_blocks} x {num_blocks} but the model has {model_blocks} blocks: "
                         "the headline is stale; rerun the pipeline")
    P.check_budgets(list(budgets.values()), num_blocks, protect_first=protect_first, protect_last=protect_last)
    P.check_force_k(force_k, num_blocks)
    if unknown := [m for m in methods if m not in P.METHODS]:
        raise StudyError(f"study methods {unknown} are unknown: choose from {', '.join(P.METHODS)}")
    if bad := [k for k in ks if not 2 <= k <= num_blocks]:
        raise StudyError(f"study ks {bad}: K clusters need 2 <= K <= {num_blocks} (the model's blocks)")
    if bad := [n for n in n_samples_grid if n < 2]:
        raise StudyError(f"study n_samples {bad}: a calibration draw needs at least 2 windows")
    for corpus in corpora:
        data.corpus(corpus)
    if set(methods) & set(LOSS_METHODS):  # seed draws score block importance on their first windows
        P.loss_windows(range(n_samples), importance_samples)
    wanted = {plan_name(m, label): count for m in dict.fromkeys(["lorp", *methods]) for label, count in budgets.items()}
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
              budgets: Mapping[str, int], methods: Sequence[str], seeds: Sequence[int], ks: Sequence[int],
              n_samples_grid: Sequence[int], corpora: Sequence[str], corpus: str, n_samples: int, seqlen: int,
              seed: int, similarity_batch_size: int, force_k: int | None, cluster_random_state: int,
              protect_first: bool, protect_last: bool, random_seed: int, importance_samples: int,
              importance_batch_size: int, eval_batch_size: int) -> dict:
    """reports/<model>/study.json: the default draw, the extra calibration draws, the K sweep, their perplexities.

    budgets maps a label ("p20") to the blocks it removes; corpus/n_samples/seqlen/seed are the default draw's
    calibration. The default draw lists LoRP's and the study methods' headline plans; seed draws re-select every
    study method, size and corpus draws LoRP alone; grid values equal to the default draw's are skipped. K sweep
    plans are LoRP's with K forced on the default S; rls_k marks the K the default draw used.
    """
    start = time.perf_counter()
    s = np.asarray(headline["s"])
    num_blocks = len(s)
    check(num_blocks=num_blocks, model_blocks=len(locate_blocks(model)[1]), headline=headline, eval_sets=eval_sets,
          budgets=budgets, methods=methods, ks=ks, n_samples_grid=n_samples_grid, corpora=corpora,
          n_samples=n_samples, force_k=force_k, protect_first=protect_first, protect_last=protect_last,
          importance_samples=importance_samples)
    protect = {"protect_first": protect_first, "protect_last": protect_last}
    by_name = {p["name"]: p for p in headline["plans"]}
    draws = [{"kind": "default", "corpus": corpus, "n_samples": n_samples, "seed": seed,
              "rls": headline["rls"]["rls"], "k": headline["rls"]["k"], "labels": [int(x) for x in headline["labels"]],
              "plans": {plan_name(m, label): list(by_name[plan_name(m, label)]["removed"])
                        for m in dict.fromkeys(["lorp", *methods]) for label in budgets}}]

    def draw(kind: str, draw_corpus: str, draw_n: int, draw_seed: int, draw_methods: Sequence[str]) -> dict:
        ids, _ = sample(tokenizer, draw_corpus, draw_n, seqlen, draw_seed)
        sim = block_input_similarity(model, ids, batch_size=similarity_batch_size, progress=False)
        rls = score(sim.s, force_k=force_k)
        labels = cluster(sim.s, rls["k"], random_state=cluster_random_state)
        importance = None
        if loss := [m for m in draw_methods if m in LOSS_METHODS]:
            importance = block_importance(model, P.loss_windows(ids, importance_samples),
                                          sleb_rounds=max(budgets.values()) if "sleb" in loss else 0,
                                          batch_size=importance_batch_size, **protect)
        plans = select(sim.s, labels, draw_methods, budgets, angular=sim.angular, importance=importance,
                       random_seed=random_seed, **protect)
        return {"kind": kind, "corpus": draw_corpus, "n_samples": draw_n, "seed": draw_seed, "rls": rls["rls"],
                "k": rls["k"], "labels": labels.tolist(), "plans": plans}

    calibration_start = time.perf_counter()
    draws += [draw("seed", corpus, n_samples, x, methods) for x in dict.fromkeys(seeds) if x != seed]
    draws += [draw("size", corpus, x, seed, ["lorp"]) for x in dict.fromkeys(n_samples_grid) if x != n_samples]
    draws += [draw("corpus", x, n_samples, seed, ["lorp"]) for x in dict.fromkeys(corpora) if x != corpus]
    k_sweep = []
    for k in dict.fromkeys(ks):
        forced = select(s, cluster(s, k, random_state=cluster_random_state), ["lorp"], budgets,
                        random_seed=random_seed, **protect)
        k_sweep += [{"k": k, "rls_k": k == headline["rls"]["k"], "label": label,
                     "blocks": forced[plan_name("lorp", label)]} for label in budgets]
    calibration_s = time.perf_counter() - calibration_start

    datasets = list(eval_sets)
    known = {frozenset(p["removed"]): {ds: row[ds] for ds in datasets} | {"average": row["average"]}
             for p in headline["plans"] if (row := headline["ppl"]["ppl"].get(p["name"])) is not None}
    sets = [frozenset(b) for d in draws for b in d["plans"].values()] + [frozenset(e["blocks"]) for e in k_sweep]
    evaluation_start = time.perf_counter()
    rows, evaluated, reused = evaluate(model, sets, eval_sets, known, eval_batch_size)
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
