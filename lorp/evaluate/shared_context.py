"""A multiple-choice question's shared context run once: its choices packed behind one copy of it.

lm-eval scores each choice of a question as its own request (context + choice), so a 4-choice question runs its
context through the model four times; its logits cache shares only one-token choices. Here the choices of one
context follow a single copy of it in one row. Each choice's tokens attend to the context and to their own earlier
tokens only (a 4D attention mask) and sit at the positions they have in their own request (position ids restart
after the context for each choice), so every choice's log-likelihood is its own request's up to float rounding.
That holds where the attention applies a custom 4D mask as given (transformers' eager and sdpa attention);
`lorp.evaluate.zeroshot.PlanLM` checks it on a probe before packing and otherwise scores per choice.
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch.nn import functional

Request = tuple[object, list[int], list[int]]  # lm-eval's (cache key, context tokens, continuation tokens)
Answer = tuple[float, bool]  # lm-eval's (log-likelihood, continuation is the greedy one)
Group = tuple[tuple[int, ...], list[tuple[int, ...]]]  # a context and its distinct continuations


class Packed(NamedTuple):
    """One right-padded batch of packed rows. reads[row][j]: the positions whose next-token predictions score the
    row's j-th continuation, and that continuation's tokens."""

    ids: torch.Tensor  # [rows, width]
    positions: torch.Tensor  # [rows, width], each token's position in its own request
    allowed: torch.Tensor  # [rows, width, width] bool: the query (dim 1) attends to the key (dim 2)
    reads: list[list[tuple[list[int], list[int]]]]


def packable(context: Sequence[int], continuation: Sequence[int], max_length: int, window: int | None) -> bool:
    """Whether a request can be packed exactly: lm-eval would not truncate it (context + continuation within
    max_length + 1) and no token of it lies farther back than a sliding window reaches (a packed row's custom mask
    replaces the window)."""
    length = len(context) + len(continuation) - 1  # the model's input: the last token is only predicted
    return bool(context) and len(continuation) > 0 and length <= max_length and (window is None or length <= window)


def group_requests(requests: Sequence[Request], max_length: int, window: int | None
                   ) -> tuple[dict[tuple[int, ...], dict[tuple[int, ...], list[int]]], list[int]]:
    """({context: {continuation: indices of the requests asking for it}}, indices of requests to score one by one)."""
    groups: dict[tuple[int, ...], dict[tuple[int, ...], list[int]]] = {}
    alone = []
    for i, (_, context, continuation) in enumerate(requests):
        if packable(context, continuation, max_length, window):
            groups.setdefault(tuple(context), {}).setdefault(tuple(continuation), []).append(i)
        else:
            alone.append(i)
    return groups, alone


def packed_length(group: Group) -> int:
    context, continuations = group
    return len(context) + sum(len(c) - 1 for c in continuations)


def pack(groups: Sequence[Group], pad: int) -> Packed:
    """One row per group: the context, then each continuation but its last token (which is only predicted).
    Padding attends to itself only, so no row of the mask is empty."""
    width = max(packed_length(g) for g in groups)
    ids = torch.full((len(groups), width), pad, dtype=torch.long)
    positions = torch.zeros((len(groups), width), dtype=torch.long)
    allowed = torch.eye(width, dtype=torch.bool).repeat(len(groups), 1, 1)
    reads = []
    for row, (context, continuations) in enumerate(groups):
        n = len(context)
        ids[row, :n] = torch.tensor(context)
        positions[row, :n] = torch.arange(n)
        allowed[row, :n, :n] = torch.ones(n, n, dtype=torch.bool).tril()
        row_reads, at = [], n
        for continuation in continuations:
            k = len(continuation) - 1  # tokens of it in the row
            ids[row, at:at + k] = torch.tensor(continuation[:-1])
            positions[row, at:at + k] = torch.arange(n, n + k)
            allowed[row, at:at + k, :n] = True
            allowed[row, at:at + k, at:at + k] = torch.ones(k, k, dtype=torch.bool).tril()
            row_reads.append(([n - 1, *range(at, at + k)], list(continuation)))
            at += k
        reads.append(row_reads)
    return Packed(ids, positions, allowed, reads)


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[rows, 1, width, width]: 0 where attended, the dtype's lowest value elsewhere; eager attention adds it to the
    scores and sdpa takes it as it is."""
    mask = torch.zeros(allowed.shape, dtype=dtype)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min).unsqueeze(1)


def answers(packed: Packed, hidden: torch.Tensor, logits_of: Callable[[torch.Tensor], torch.Tensor]
            ) -> list[list[Answer]]:
    """Each packed continuation's (summed log-probability, greedy) as lm-eval computes them (log-softmax in the
    logits' dtype, the greedy check on every token). The head runs one row at a time on the positions read, each
    once: the context's last position predicts every choice's first token (on Gemma-3's 262k vocabulary the head
    costs more than the blocks)."""
    out = []
    for row, row_reads in enumerate(packed.reads):
        where = sorted({p for read, _ in row_reads for p in read})
        index = {p: i for i, p in enumerate(where)}
        logprobs = functional.log_softmax(logits_of(hidden[row, where]), dim=-1)
        greedy = logprobs.argmax(dim=-1)
        row_out = []
        for read, targets in row_reads:
            at, want = torch.tensor([index[p] for p in read]), torch.tensor(targets, device=logprobs.device)
            picked = logprobs[at.to(logprobs.device), want]
            row_out.append((float(picked.sum()), bool((greedy[at] == want).all())))
        out.append(row_out)
    return out
