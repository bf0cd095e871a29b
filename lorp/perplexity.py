"""Perplexity over non-overlapping windows: exp(mean token NLL), as GPTQ/SLEB-style evaluations do.

The loss is taken from the base model's final hidden states a few rows of logits at a time (`lorp.resume`):
full-batch float32 logits over Gemma-3's 262k vocabulary would cost gigabytes.
"""

import math
import time
from collections.abc import Collection, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from lorp import data
from lorp.blocks import locate_blocks
from lorp.resume import PROBE_TOKENS, Runner, batches, check_indices, token_nll, tokens
from lorp.tokens import bos_id, tokenize_stream, windows


def eval_windows(tokenizer, dataset: str, seqlen: int, max_windows: int | None) -> np.ndarray:
    stream = tokenize_stream(tokenizer, data.evaluation_text(dataset))
    bos = bos_id(tokenizer)
    body = seqlen - (bos is not None)
    n = len(stream) // body if max_windows is None else min(max_windows, len(stream) // body)
    return windows(stream, n, seqlen, bos)


@torch.no_grad()
def perplexity(model, ids: np.ndarray, batch_size: int, desc: str = "perplexity") -> dict:
    start = time.perf_counter()
    windows = batches(model, ids, batch_size)
    runner = Runner(model, windows[0][:1, :PROBE_TOKENS])
    nll = sum(token_nll(model, runner.run(batch)[0], batch)
              for batch in tqdm(windows, desc=desc, unit="batch", leave=False))
    return {"ppl": math.exp(nll / tokens(ids)), "tokens": tokens(ids), "windows": len(ids),
            "seconds": round(time.perf_counter() - start, 2)}


@torch.no_grad()
def plan_perplexities(model, ids: np.ndarray, plans: Mapping[str, Collection[int]], *, batch_size: int,
                      desc: str = "plan perplexities") -> dict[str, float]:
    """{plan: PPL with its blocks removed} (empty: dense), as `skip_blocks` + `perplexity` give, for far less.

    Each distinct block set is computed once. Per batch, one dense pass records every block's input and each
    set resumes the model's own forward at its first removed block, whose input no removal changes.
    """
    sets = {name: frozenset(blocks) for name, blocks in plans.items()}
    distinct = list(dict.fromkeys(sets.values()))
    check_indices(frozenset().union(*distinct), len(locate_blocks(model)[1]), "plan")
    windows = batches(model, ids, batch_size)
    runner = Runner(model, windows[0][:1, :PROBE_TOKENS])
    nll = dict.fromkeys(distinct, 0.0)
    with tqdm(total=len(windows) * len(distinct), desc=desc, unit="run") as bar:
        for batch in windows:
            dense, states = runner.run(batch, capture=True)
            for s in distinct:
                hidden = runner.run(batch, s, start=min(s), state=states[min(s)])[0] if s else dense
                nll[s] += token_nll(model, hidden, batch)
                bar.update()
    return {name: math.exp(nll[s] / tokens(ids)) for name, s in sets.items()}
