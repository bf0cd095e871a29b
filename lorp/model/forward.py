"""The model's own forward resumed at a block, and the next-token loss taken from its final hidden states.

The hidden state entering block b does not depend on blocks >= b. One pass that records every block's input
therefore lets any removal set restart the model's OWN forward at its first removed block: blocks before it
return the recorded state at once and removed blocks return their input, while the model's own masks, position
embeddings and final norm still run. The result equals the plain forward under `skip_blocks` up to float
rounding on every architecture `locate_blocks` knows.

The loss is taken from final hidden states one tile of the logits at a time (a block of rows by a block of
vocabulary columns, the log-normaliser accumulated over the column blocks), so no batch's full logits (float32 over
a 262k vocabulary for Gemma) are ever held.
"""

import contextlib
import math
import time
from collections.abc import Callable, Iterable

import numpy as np
import torch
from accelerate.utils import align_module_device
from torch.nn import functional
from tqdm.auto import tqdm

from lorp.errors import LorpError
from lorp.model.blocks import block_input, locate_blocks

# One tile of logits when scoring: 1024 rows x 1024 vocabulary columns, 4 MB of float32. The softcap and the
# log-sum-exp run over it in place while it is still in cache; on the former 2048 x 8192 tiles (64 MB) they were
# memory-bound, and the real Gemma-3 head's loss over 8 x 256 tokens took 10-12 s where these tiles take 7-8.5 s
# (2-core CPU, same process, alternating). Rows are the outer loop: the head's weights are read once per 1024 rows.
ROW_BLOCK = 1024
VOCAB_SLICE = 1024
PROBE_TOKENS = 8  # tokens of the one short forward that checks the head and learns the blocks' output format


class ResumeError(LorpError, ValueError):
    pass


def check_indices(indices: Iterable[int], n: int, what: str) -> None:
    bad = sorted(i for i in indices if not 0 <= i < n)
    if bad:
        raise ResumeError(f"{what} blocks {bad} do not exist: the model has blocks 0..{n - 1}")


def head_loaded(head: torch.nn.Module):
    """A context in which the head's weights are real: with `device: auto` accelerate may offload the head, whose
    weights then stay on 'meta' until its hook loads them, and a direct matmul with a meta weight returns garbage
    without an error. Only when offloaded, so a nested use does not put them back while the outer one reads."""
    return align_module_device(head) if head.weight.device.type == "meta" else contextlib.nullcontext()


def head_logits(model, hidden: torch.Tensor, columns: slice = slice(None)) -> torch.Tensor:
    """Logits of the vocabulary `columns` as the causal-LM forward makes them: output embeddings, then softcapping."""
    head = model.get_output_embeddings()
    with head_loaded(head):
        weight, bias = head.weight[columns], None if head.bias is None else head.bias[columns]
        logits = functional.linear(hidden.to(weight.device), weight, bias).to(hidden.device)
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    return logits.div_(cap).tanh_().mul_(cap) if cap else logits  # in place: the same values, no copies


def window_nll(model, hidden: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """Each window's summed next-token NLL (float64, one per row of batch), one tile of logits at a time (Gemma's
    vocabulary is 262k): the per-window losses an evaluation-sample bootstrap resamples.

    Each tile's log-sum-exp is max + log(sum(exp(logits - max))), as torch.logsumexp computes it, but in place.
    """
    states = hidden[:, :-1].reshape(-1, hidden.size(-1))
    targets = batch[:, 1:].reshape(-1)
    head = model.get_output_embeddings()
    vocab = head.weight.shape[0]
    per_token = []
    with head_loaded(head):  # once for every tile
        for i in range(0, len(targets), ROW_BLOCK):
            x, t = states[i:i + ROW_BLOCK], targets[i:i + ROW_BLOCK]
            norm = torch.full(t.shape, -torch.inf, device=t.device)
            picked = torch.empty(t.shape, device=t.device)
            for lo in range(0, vocab, VOCAB_SLICE):
                logits = head_logits(model, x, slice(lo, lo + VOCAB_SLICE)).float()
                inside = (t >= lo) & (t < lo + VOCAB_SLICE)
                picked[inside] = logits[inside, t[inside] - lo]
                top = logits.amax(dim=-1, keepdim=True)
                tile = logits.sub_(top).exp_().sum(dim=-1).log_().add_(top.squeeze(-1))
                norm = torch.logaddexp(norm, tile)
            per_token.append((norm - picked).double())
    return torch.cat(per_token).reshape(batch.shape[0], -1).sum(dim=1).cpu()


def token_nll(model, hidden: torch.Tensor, batch: torch.Tensor) -> float:
    """Summed next-token NLL of the windows in batch."""
    return float(window_nll(model, hidden, batch).sum())


def tokens(ids: np.ndarray) -> int:
    """Predicted tokens of the windows: every token but each window's first."""
    return ids.shape[0] * (ids.shape[1] - 1)


class Runner:
    """Runs the model's own forward from a recorded block input, with removed blocks as free pass-throughs."""

    def __init__(self, model, probe: torch.Tensor):
        self.model = model
        _, self.blocks = locate_blocks(model)
        self.tails = self._probe(probe)

    def _probe(self, probe: torch.Tensor) -> list[tuple | None]:
        """What each block returns after its hidden state (None: a bare tensor); refuses a head it can't redo."""
        tails: list[tuple | None] = [None] * len(self.blocks)

        def hook_for(i: int):
            def hook(module, args, output):
                tails[i] = output[1:] if isinstance(output, tuple) else None
            return hook

        handles = [b.register_forward_hook(hook_for(i)) for i, b in enumerate(self.blocks)]
        try:
            want = self.model(input_ids=probe, use_cache=False).logits
        finally:
            for h in handles:
                h.remove()
        if not isinstance(self.model.get_output_embeddings(), torch.nn.Linear):
            raise ResumeError(f"{type(self.model).__name__}'s output embeddings are not a linear layer, which "
                              "lorp.model.forward.head_logits needs to take the loss one slice of logits at a time")
        got = head_logits(self.model, self.run(probe)[0])
        if not torch.allclose(got.float(), want.float(), rtol=1e-4, atol=1e-4):
            raise ResumeError(f"{type(self.model).__name__} turns its final hidden states into logits in a way "
                              "lorp.model.forward.head_logits does not reproduce: add its case there")
        return tails

    @contextlib.contextmanager
    def _bypassed(self, i: int, source: Callable[[tuple, dict], torch.Tensor]):
        """Block i returns source(args, kwargs) in its own output format, computing nothing."""
        block, tail = self.blocks[i], self.tails[i]
        saved = block.__dict__.get("forward")  # an instance forward (accelerate's device hook) to put back

        def forward(*args, **kwargs):
            h = source(args, kwargs)
            return h if tail is None else (h, *tail)

        block.forward = forward
        try:
            yield
        finally:
            if saved is None:
                del block.forward
            else:
                block.forward = saved

    def run(self, batch: torch.Tensor, skipped: Iterable[int] = (), start: int = 0,
            state: torch.Tensor | None = None, capture: bool = False,
            **inputs: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Final (normed) hidden states of batch with `skipped` removed, resuming at block `start` fed `state`.

        With capture, also {block: its input} for every block from `start` on. `inputs` go to the model as they are
        (a custom 4D attention_mask, position_ids).
        """
        captured: dict[int, torch.Tensor] = {}

        def record(i: int):
            def hook(module, args, kwargs):
                captured[i] = block_input(args, kwargs)
            return hook

        with contextlib.ExitStack() as stack:
            for i in range(start):
                stack.enter_context(self._bypassed(i, lambda args, kwargs: state))
            for i in {i for i in skipped if i >= start}:
                stack.enter_context(self._bypassed(i, block_input))
            for i in range(start, len(self.blocks)) if capture else ():
                stack.callback(self.blocks[i].register_forward_pre_hook(record(i), with_kwargs=True).remove)
            hidden = self.model.base_model(input_ids=batch, use_cache=False, **inputs).last_hidden_state
        return hidden, captured


def batches(model, ids: np.ndarray, batch_size: int) -> list[torch.Tensor]:
    """The windows as tensors of batch_size rows (the last may be shorter) on the model's device."""
    device = next(model.parameters()).device
    return [torch.as_tensor(ids[lo:lo + batch_size], device=device) for lo in range(0, len(ids), batch_size)]


@torch.no_grad()
def perplexity(model, ids: np.ndarray, batch_size: int, desc: str = "perplexity") -> dict:
    start = time.perf_counter()
    windows = batches(model, ids, batch_size)
    runner = Runner(model, windows[0][:1, :PROBE_TOKENS])
    nll = sum(token_nll(model, runner.run(batch)[0], batch)
              for batch in tqdm(windows, desc=desc, unit="batch", leave=False))
    return {"ppl": math.exp(nll / tokens(ids)), "tokens": tokens(ids), "windows": len(ids),
            "seconds": round(time.perf_counter() - start, 2)}
