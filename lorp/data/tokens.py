"""Text to token windows, shared by calibration and evaluation so both cut text the same way."""

import hashlib
import json

import numpy as np

from lorp.errors import LorpError


class WindowError(LorpError, ValueError):
    pass


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the vocabulary and special tokens: windows built by one tokenizer carry it."""
    payload = json.dumps([sorted(tokenizer.get_vocab().items()), tokenizer.all_special_tokens])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def needs_bos(tokenizer) -> bool:
    """Whether the tokenizer itself starts text with BOS (Gemma does, SmolLM2 does not)."""
    ids = tokenizer("a").input_ids
    return tokenizer.bos_token_id is not None and len(ids) > 0 and ids[0] == tokenizer.bos_token_id


def bos_id(tokenizer) -> int | None:
    """The BOS id every window starts with, or None for models that take none."""
    return tokenizer.bos_token_id if needs_bos(tokenizer) else None


def tokenize_stream(tokenizer, text: str) -> np.ndarray:
    """Token ids of text with no special tokens: windows add BOS themselves where the model needs it."""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if not ids:
        raise WindowError("the text is empty after tokenization")
    return np.asarray(ids, dtype=np.int64)


def windows(stream: np.ndarray, n: int | None, seqlen: int, bos: int | None,
            rng: np.random.Generator | None = None) -> np.ndarray:
    """Cut non-overlapping windows; sample n of them with rng, or take the first n in order.

    With a BOS id each window is BOS + (seqlen - 1) text tokens, so every window has seqlen tokens.
    """
    body = seqlen - (bos is not None)
    if body < 1:
        raise WindowError(f"seqlen={seqlen} leaves no room for text after BOS")
    available = len(stream) // body
    want = available if n is None else n
    if want > available or available == 0:
        raise WindowError(f"the text has {len(stream)} tokens: room for {available} windows of {body} "
                          f"tokens, {want} asked; lower n_samples / seqlen or choose a larger corpus")
    starts = np.arange(available) * body
    if rng is not None:
        starts = np.sort(rng.choice(starts, size=want, replace=False))
    else:
        starts = starts[:want]
    out = np.stack([stream[s:s + body] for s in starts])
    if bos is not None:
        out = np.concatenate([np.full((want, 1), bos, dtype=np.int64), out], axis=1)
    return out
