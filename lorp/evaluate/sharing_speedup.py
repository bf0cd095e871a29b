"""`make bench`'s timing of zero-shot scoring with a question's context run once for all its choices against
lm-eval's per-choice loop, on each fetched model and a few of its plans, with params.yaml's tasks and limit.

The two ways alternate within each round (AB, then BA) in one process, so a drift of the machine's speed hits both
alike; the record holds each round's seconds and their ratio, the model input tokens of each way, and whether every
example was scored the same. Outside the DVC pipeline on purpose: it measures this machine, not the study.
Usage: lorp zeroshot-speedup <model key> [...] --out reports/bench/zeroshot_sharing.json (make bench)
"""

import statistics
import time
from pathlib import Path

from lorp.evaluate.zeroshot import evaluate_plans
from lorp.io import read_json, require_outputs, write_json
from lorp.model.load import load_model, load_tokenizer

ROUNDS = 3  # paired rounds per model
PLANS = 3  # plans timed beside the dense model


def timed_plans(key: str, count: int) -> dict[str, list[int]]:
    """The dense model and the first `count` plans of data/<key>/plans.json with distinct removals."""
    chosen: dict[str, list[int]] = {"dense": []}
    for plan in read_json(Path("data") / key / "plans.json"):
        if len(chosen) > count:
            break
        if sorted(plan["removed"]) not in map(sorted, chosen.values()):
            chosen[plan["name"]] = plan["removed"]
    return chosen


def measure(models: dict[str, tuple[str, str]], out: str | Path, *, tasks: list[str], limit: int | None,
            batch_size: int, mirror: Path | None) -> dict:
    """Time both ways on each model {key: (dtype, device)} the pipeline fetched and planned, and write the record."""
    for key in models:
        require_outputs(key, [Path("data") / key / "plans.json", Path("models") / key / "dense"])
    results = {}
    for key, (dtype, device) in models.items():
        chosen = timed_plans(key, PLANS)
        model = load_model(Path("models") / key / "dense", dtype=dtype, device=device)
        tokenizer = load_tokenizer(Path("models") / key / "dense")
        seconds: dict[bool, list[float]] = {True: [], False: []}
        correct, tokens = {}, {}
        for i in range(ROUNDS):
            for share in (True, False) if i % 2 == 0 else (False, True):
                start = time.perf_counter()
                scored = evaluate_plans(model, tokenizer, chosen, tasks=tasks, limit=limit, batch_size=batch_size,
                                        mirror=mirror, share_context=share)
                seconds[share].append(round(time.perf_counter() - start, 2))
                correct.setdefault(share, {n: {t: r.get("correct") for t, r in v["tasks"].items()}
                                           for n, v in scored.items()})
                tokens[share] = scored["dense"]["tokens"]
        ratios = [b / a for a, b in zip(seconds[True], seconds[False], strict=True)]
        outcome = scored["dense"]["tasks"]
        results[key] = {"plans": list(chosen), "tasks": [t for t in tasks if "skipped" not in outcome[t]],
                        "skipped": {t: r["skipped"] for t, r in outcome.items() if "skipped" in r},
                        "limit": limit, "rounds": ROUNDS,
                        "shared_seconds": seconds[True], "per_choice_seconds": seconds[False],
                        "ratios": [round(r, 3) for r in ratios], "median_ratio": round(statistics.median(ratios), 3),
                        "tokens_shared": tokens[True]["run"], "tokens_per_choice": tokens[False]["run"],
                        "shared_context": tokens[True]["shared_context"],
                        "same_correctness": correct[True] == correct[False]}
        print(key, results[key])
    write_json(out, results)
    return results
