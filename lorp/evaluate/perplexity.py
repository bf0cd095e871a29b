"""Perplexity over non-overlapping windows: exp(mean token NLL), as GPTQ/SLEB-style evaluations do.

The loss is taken from the base model's final hidden states a few rows of logits at a time (`lorp.model.forward`):
full-batch float32 logits over Gemma-3's 262k vocabulary would cost gigabytes.
"""

import math
import time
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lorp.data import sources
from lorp.data.tokens import bos_id, tokenize_stream, windows
from lorp.io import library_versions, peak_rss_mib
from lorp.model.blocks import locate_blocks
from lorp.model.forward import PROBE_TOKENS, Runner, batches, check_indices, tokens, window_nll
from lorp.model.patches import Patch, distinct_runs, patched, seconds_per_plan


def eval_windows(tokenizer, dataset: str, seqlen: int, max_windows: int | None, mirror: Path | None) -> np.ndarray:
    stream = tokenize_stream(tokenizer, sources.evaluation_text(dataset, mirror))
    bos = bos_id(tokenizer)
    body = seqlen - (bos is not None)
    n = len(stream) // body if max_windows is None else min(max_windows, len(stream) // body)
    return windows(stream, n, seqlen, bos)


@torch.no_grad()
def plan_window_nll(model, ids: np.ndarray, plans: Mapping[str, Collection[int]], *, batch_size: int,
                    patches: Mapping[str, Patch] | None = None, desc: str = "plan perplexities",
                    seconds: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """{plan: each window's summed NLL} with its blocks removed (empty: dense), as `skip_blocks` gives, for less.

    A recovered plan also has a patch: the parameters its recovery changed (`lorp.model.patches`). Each distinct
    plan is computed once. Per batch, one dense pass records every block's input and each plan resumes the model's
    own forward at its first changed block, whose input nothing before it changes. `seconds`, when given, gains
    each plan's own compute time (seconds_per_plan; the dense run's includes recording the states).
    """
    check_indices(frozenset().union(*map(frozenset, plans.values())), len(locate_blocks(model)[1]), "plan")
    keys, runs = distinct_runs(model, plans, patches)
    windows = batches(model, ids, batch_size)
    runner = Runner(model, windows[0][:1, :PROBE_TOKENS])
    nll: dict[tuple, list] = {key: [] for key in runs}
    took = dict.fromkeys(runs, 0.0)
    dense_key = next((key for key, run in runs.items() if run.start == len(runner.blocks)), None)
    with tqdm(total=len(windows) * len(runs), desc=desc, unit="run") as bar:
        for batch in windows:
            tick = time.perf_counter()
            dense, states = runner.run(batch, capture=True)
            if dense_key is not None:  # the pass that records the states is the dense model's own run
                took[dense_key] += time.perf_counter() - tick
            for key, run in runs.items():
                tick = time.perf_counter()
                with patched(model, run.patch):
                    hidden = (runner.run(batch, run.removed, start=run.start, state=states[run.start])[0]
                              if run.start < len(runner.blocks) else dense)
                    nll[key].append(window_nll(model, hidden, batch).numpy())
                took[key] += time.perf_counter() - tick
                bar.update()
    if seconds is not None:
        for name, spent in seconds_per_plan(keys, took).items():
            seconds[name] = seconds.get(name, 0.0) + spent
    return {name: np.concatenate(nll[key]) for name, key in keys.items()}


def plan_perplexities(model, ids: np.ndarray, plans: Mapping[str, Collection[int]], *, batch_size: int,
                      patches: Mapping[str, Patch] | None = None, desc: str = "plan perplexities") -> dict[str, float]:
    """{plan: PPL} over the windows (plan_window_nll)."""
    nll = plan_window_nll(model, ids, plans, batch_size=batch_size, patches=patches, desc=desc)
    return {name: math.exp(float(v.sum()) / tokens(ids)) for name, v in nll.items()}


def ppl_record(model, sets: Mapping[str, np.ndarray], plans: Mapping[str, Collection[int]], *, batch_size: int,
               dtype: str, device: str, start: float, patches: Mapping[str, Patch] | None = None) -> dict:
    """ppl.json: every plan's PPL per dataset and their average, each window's summed NLL (what an evaluation-
    sample bootstrap resamples; a window predicts seqlen - 1 tokens), the windows scored, the stage's seconds since
    `start`, each plan's own share of them (plan_seconds: what scoring it added) and the peak RSS."""
    took: dict[str, float] = {}
    nll = {ds: plan_window_nll(model, ids, plans, batch_size=batch_size, patches=patches, desc=ds, seconds=took)
           for ds, ids in sets.items()}
    results = {}
    for name, removed in plans.items():
        row = {ds: math.exp(float(nll[ds][name].sum()) / tokens(ids)) for ds, ids in sets.items()}
        results[name] = row | {"average": sum(row.values()) / len(row), "removed": len(removed)}
        print(name, {k: round(v, 3) for k, v in results[name].items()})
    windows = {ds: {"windows": int(len(ids)), "seqlen": int(ids.shape[1])} for ds, ids in sets.items()}
    per_window = {name: {ds: [round(float(x), 4) for x in nll[ds][name]] for ds in sets} for name in plans}
    return {"ppl": results, "window_nll": per_window, "eval_windows": windows,
            "seconds": round(time.perf_counter() - start, 1),
            "plan_seconds": {name: round(spent, 2) for name, spent in took.items()}, "peak_rss_mib": peak_rss_mib(),
            "dtype": dtype, "device": device, "versions": library_versions()}
