"""lm-eval's HuggingFace model over the dense model that scores removal plans, computing only what lm-eval reads."""

from collections.abc import Collection

import torch
from lm_eval.models.huggingface import HFLM
from tqdm.auto import tqdm

from lorp.data.tokens import needs_bos
from lorp.evaluate.shared_context import (
    Packed,
    additive_mask,
    answers,
    group_requests,
    pack,
    packable,
    packed_length,
)
from lorp.model.forward import Runner, head_logits
from lorp.model.patches import Run, patched

PACKING_ATTENTION = ("eager", "sdpa")  # attention implementations that apply a custom 4D mask as given
PROBE_TOLERANCE = 1e-4  # packed vs per-choice log-likelihood on the probe, absolute and relative


def lm_eval_tokens(requests, max_length: int) -> int:
    """Model input tokens of lm-eval's per-choice loop: one row per distinct (context + continuation)[:-1], which is
    all its logits cache shares (one-token continuations of one context)."""
    return sum(map(len, {tuple((c + n)[-(max_length + 1):][:-1]) for _, c, n in requests}))


class PlanLM(HFLM):
    """HFLM over the dense model that scores a removal plan, computing only what lm-eval reads.

    - The plan is `removed`, bypassed in the model's own forward (`lorp.model.forward.Runner`, the prune stage's
      proof of exactness). lm-eval's batches are the same for every plan, so the dense run records each batch's input of
      the blocks in `starts` (a few MB per block: lm-eval's inputs are short) and a plan resumes at its first
      removed block from it.
    - A question's context runs once for all its choices (`lorp.evaluate.shared_context`), where the probe at
      construction shows that packing reproduces per-choice scoring on this model (`share_context`); requests that
      cannot be packed exactly, and every request otherwise, go through lm-eval's own per-choice loop.
    - On that loop lm-eval takes the log-softmax of every position but reads only each request's continuation. The
      logits returned cover the last positions of the padded batch that hold every row's continuation, where
      lm-eval's own offset for shorter logits (`inplen + logits.shape[0] - padding_len_inp`) reads them, and the head
      runs only on the positions it reads (the rest are zeros nobody reads): on Gemma-3's 262k vocabulary the head
      cost more than all the blocks. A batch with a row not recognised among the requests gets every position's
      logits, the plain behaviour.
    """

    def __init__(self, model, tokenizer, batch_size: int, starts: Collection[int] = (), share_context: bool = True):
        super().__init__(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                         add_bos_token=True if needs_bos(tokenizer) else None)
        probe = torch.as_tensor([tokenizer("a b c d").input_ids], device=next(model.parameters()).device)
        self.runner = Runner(model, probe)
        self.plan = Run(frozenset(), {}, len(self.runner.blocks))  # what _model_call runs: the dense model first
        self.starts = set(starts)
        self.states: dict[bytes, dict[int, torch.Tensor]] = {}
        self.scored: dict[tuple[int, ...], int] = {}
        self.window = getattr(model.config.get_text_config(), "sliding_window", None)
        self.share_context = share_context and self._packing_matches(probe[0].tolist())
        self.tokens = {"run": 0, "per_choice": 0}  # model input tokens of the last requests, and lm-eval's own count

    def _packing_matches(self, tokens: list[int]) -> bool:
        """Whether a packed row scores three continuations of the probe as their own requests do (an attention that
        ignores or rebuilds a custom 4D mask would not)."""
        if self.model.config._attn_implementation not in PACKING_ATTENTION:
            return False
        limit = min(self.max_length, self.window or self.max_length)  # inputs packing may take, as group_requests
        context = tuple(tokens[:max(1, limit - 1)])
        continuations = [tuple(tokens[1:3]), tuple(tokens[2:3]), (tokens[-1], tokens[0])]
        if not all(packable(context, c, self.max_length, self.window) for c in continuations):
            return False
        with torch.no_grad():
            got = self._answers(pack([(context, continuations)], pad=0),
                                lambda ids, **inputs: self.runner.run(ids, **inputs)[0])[0]
            for (logprob, greedy), continuation in zip(got, continuations, strict=True):
                alone = pack([(context, [continuation])], pad=0)  # one request: a plain causal row
                want, want_greedy = answers(alone, self.runner.run(alone.ids.to(self.device))[0], self._logits)[0][0]
                if greedy != want_greedy or abs(logprob - want) > PROBE_TOLERANCE * max(1.0, abs(want)):
                    return False
        return True

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return head_logits(self.model, hidden)

    def _answers(self, packed: Packed, run) -> list[list[tuple[float, bool]]]:
        inputs = {"attention_mask": additive_mask(packed.allowed, self.model.dtype).to(self.device),
                  "position_ids": packed.positions.to(self.device)}
        return answers(packed, run(packed.ids.to(self.device), **inputs), self._logits)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        self.tokens = {"run": 0, "per_choice": lm_eval_tokens(requests, self.max_length)}
        if not self.share_context:
            self.tokens["run"] = self.tokens["per_choice"]
            return self._per_choice(requests, disable_tqdm, override_bs)
        groups, alone = group_requests(requests, self.max_length, self.window)
        results: list = [None] * len(requests)
        if alone:
            for i, answer in zip(alone, self._per_choice([requests[i] for i in alone], disable_tqdm, override_bs),
                                 strict=True):
                results[i] = answer
            self.tokens["run"] += lm_eval_tokens([requests[i] for i in alone], self.max_length)
        ordered = sorted(((c, list(conts)) for c, conts in groups.items()), key=lambda g: -packed_length(g))
        for lo in tqdm(range(0, len(ordered), self.batch_size), disable=disable_tqdm, unit="batch",
                       desc="shared-context requests", leave=False):
            chunk = ordered[lo:lo + self.batch_size]
            self.tokens["run"] += sum(map(packed_length, chunk))
            with torch.no_grad(), patched(self.model, self.plan.patch):
                scored = self._answers(pack(chunk, pad=0), self._hidden)
            for (context, continuations), row in zip(chunk, scored, strict=True):
                for continuation, answer in zip(continuations, row, strict=True):
                    for i in groups[context][continuation]:
                        results[i] = answer
                        if requests[i][0] is not None:
                            self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)
        return results

    def _per_choice(self, requests, disable_tqdm: bool, override_bs: int | None):
        """lm-eval's own loop, with the positions each of its model inputs is read at noted for _model_call."""
        self.scored = {}
        for _, context, continuation in requests:  # the model input as lm-eval cuts it, and what it scores
            inp = tuple((context + continuation)[-(self.max_length + 1):][:-1])
            self.scored[inp] = max(self.scored.get(inp, 0), len(continuation))
        return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)

    def scored_positions(self, inps: torch.Tensor) -> tuple[int, list[int], list[int]] | None:
        """(tail, rows, positions): the final `tail` positions of the right-padded batch hold every row's scored
        positions, (rows[k], positions[k]) being those lm-eval reads, counted from the tail's start; None when a
        row is not recognised among the requests."""
        width = inps.shape[1]
        rows, positions = [], []
        for i, row in enumerate(inps.tolist()):
            length = len(bytes(map(bool, row)).rstrip(b"\0"))  # a final real token 0 may look like padding
            read = {p for n in range(length, width + 1) if (key := tuple(row[:n])) in self.scored
                    for p in range(n - self.scored[key], n)}
            if not read:
                return None
            rows += [i] * len(read)
            positions += sorted(read)
        tail = width - min(positions)
        return tail, rows, [p - (width - tail) for p in positions]

    def _hidden(self, ids: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """The plan's final hidden states of a batch (inside its patch): the dense run records the inputs of the
        blocks plans resume at, keyed by the batch's tokens and positions, and each plan resumes from them."""
        key = b"".join(t.numpy(force=True).tobytes() + bytes(str(t.shape), "ascii")
                       for t in (ids, inputs.get("position_ids", ids)))
        plan = self.plan
        if plan.start == len(self.runner.blocks):
            hidden, captured = self.runner.run(ids, capture=bool(self.starts), **inputs)
            self.states[key] = {b: captured[b] for b in self.starts}
            return hidden
        state = self.states.get(key, {}).get(plan.start)
        return self.runner.run(ids, plan.removed, *(() if state is None else (plan.start, state)), **inputs)[0]

    def _model_call(self, inps: torch.Tensor, attn_mask=None, labels=None) -> torch.Tensor:
        if attn_mask is not None or labels is not None:
            return super()._model_call(inps, attn_mask, labels)
        with torch.no_grad(), patched(self.model, self.plan.patch):
            hidden = self._hidden(inps)
            scored = self.scored_positions(inps)
            if scored is None:
                return head_logits(self.model, hidden)
            tail, rows, positions = scored
            read = head_logits(self.model, hidden[:, -tail:][rows, positions])
            logits = read.new_zeros(len(inps), tail, read.shape[-1])
            logits[rows, positions] = read
            return logits
