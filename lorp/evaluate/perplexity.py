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
from lorp.model.patches import Patch, distinct_runs, patched


def eval_windows(tokenizer, dataset: str, seqlen: int, max_windows: int | None, mirror: Path | None) -> np.ndarray:
    stream = tokenize_stream(tokenizer, sources.evaluation_text(dataset, mirror))
    bos = bos_id(tokenizer)
    body = seqlen - (bos is not None)
    n = len(stream) // body if max_windows is None else min(max_windows, len(stream) // body)
    return windows(stream, n, seqlen, bos)


@torch.no_grad()
def plan_window_nll(model, ids: np.ndarray, plans: Mapping[str, Collection[int]], *, batch_size: int,
                    patches: Mapping[str, Patch] | None = None, desc: str = "plan perplexities"
                    ) -> dict[str, np.ndarray]:
    """{plan: each window's summed NLL} with its blocks removed (empty: dense), as `skip_blocks` gives, for less.

    A recovered plan also has a patch: the parameters its recovery changed (`lorp.model.patches`). Each distinct
    plan is computed once. Per batch, one dense pass records every block's input and each plan resumes the model's
    own forward at its first changed block, whose input nothing before it changes.
    """
    check_indices(frozenset().union(*map(frozenset, plans.values())), len(locate_blocks(model)[1]), "plan")
    keys, runs = distinct_runs(model, plans, patches)
    windows = batches(model, ids, batch_size)
    runner = Runner(model, windows[0][:1, :PROBE_TOKENS])
    nll: dict[tuple, list] = {key: [] for key in runs}
    with tqdm(total=len(windows) * len(runs), desc=desc, unit="run") as bar:
        for batch in windows:
            dense, states = runner.run(batch, capture=True)
            for key, run in runs.items():
                with patched(model, run.patch):
                    hidden = (runner.run(batch, run.removed, start=run.start, state=states[run.start])[0]
                              if run.start < len(runner.blocks) else dense)
                    nll[key].append(window_nll(model, hidden, batch).numpy())
                bar.update()
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
    `start` and its peak RSS."""
    nll = {ds: plan_window_nll(model, ids, plans, batch_size=batch_size, patches=patches, desc=ds)
           for ds, ids in sets.items()}
    results = {}
    for name, removed in plans.items():
        row = {ds: math.exp(float(nll[ds][name].sum()) / tokens(ids)) for ds, ids in sets.items()}
        results[name] = row | {"average": sum(row.values()) / len(row), "removed": len(removed)}
        print(name, {k: round(v, 3) for k, v in results[name].items()})
    windows = {ds: {"windows": int(len(ids)), "seqlen": int(ids.shape[1])} for ds, ids in sets.items()}
    per_window = {name: {ds: [round(float(x), 4) for x in nll[ds][name]] for ds in sets} for name in plans}
    return {"ppl": results, "window_nll": per_window, "eval_windows": windows,
            "seconds": round(time.perf_counter() - start, 1), "peak_rss_mib": peak_rss_mib(),
            "dtype": dtype, "device": device, "versions": library_versions()}
