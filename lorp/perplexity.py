"""Perplexity over non-overlapping windows: exp(mean token NLL), as GPTQ/SLEB-style evaluations do."""

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lorp import data
from lorp.tokens import bos_id, tokenize_stream, windows


def eval_windows(tokenizer, dataset: str, seqlen: int, max_windows: int | None) -> np.ndarray:
    stream = tokenize_stream(tokenizer, data.evaluation_text(dataset))
    bos = bos_id(tokenizer)
    body = seqlen - (bos is not None)
    n = len(stream) // body if max_windows is None else min(max_windows, len(stream) // body)
    return windows(stream, n, seqlen, bos)


@torch.no_grad()
def perplexity(model, ids: np.ndarray, batch_size: int, desc: str = "perplexity") -> dict:
    device = next(model.parameters()).device
    nll, count = 0.0, 0
    start = time.perf_counter()
    for lo in tqdm(range(0, len(ids), batch_size), desc=desc, unit="batch", leave=False):
        batch = torch.as_tensor(ids[lo:lo + batch_size], device=device)
        logits = model(input_ids=batch, use_cache=False).logits[:, :-1].float()
        targets = batch[:, 1:]
        nll += float(F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum"))
        count += targets.numel()
    return {"ppl": math.exp(nll / count), "tokens": count, "windows": len(ids),
            "seconds": round(time.perf_counter() - start, 2)}
