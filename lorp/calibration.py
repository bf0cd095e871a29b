"""Calibration windows: n_samples x seqlen token ids drawn, without overlap, from one corpus."""

import numpy as np

from lorp import data
from lorp.models import needs_bos, tokenizer_fingerprint


class CalibrationError(ValueError):
    pass


def tokenize_stream(tokenizer, text: str) -> np.ndarray:
    """Token ids of text with no special tokens: windows add BOS themselves where the model needs it."""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if not ids:
        raise CalibrationError("the text is empty after tokenization")
    return np.asarray(ids, dtype=np.int64)


def windows(stream: np.ndarray, n: int | None, seqlen: int, bos_id: int | None,
            rng: np.random.Generator | None = None) -> np.ndarray:
    """Cut non-overlapping windows; sample n of them with rng, or take the first n in order.

    With a BOS id each window is BOS + (seqlen - 1) text tokens, so every window has seqlen tokens.
    """
    body = seqlen - (bos_id is not None)
    if body < 1:
        raise CalibrationError(f"seqlen={seqlen} leaves no room for text after BOS")
    available = len(stream) // body
    want = available if n is None else n
    if want > available or available == 0:
        raise CalibrationError(f"the text has {len(stream)} tokens: room for {available} windows of {body} "
                               f"tokens, {want} asked; lower n_samples / seqlen or choose a larger corpus")
    starts = np.arange(available) * body
    if rng is not None:
        starts = np.sort(rng.choice(starts, size=want, replace=False))
    else:
        starts = starts[:want]
    out = np.stack([stream[s:s + body] for s in starts])
    if bos_id is not None:
        out = np.concatenate([np.full((want, 1), bos_id, dtype=np.int64), out], axis=1)
    return out


def sample(tokenizer, corpus: str, n_samples: int, seqlen: int, seed: int) -> tuple[np.ndarray, dict]:
    docs, split, excluded = data.calibration_docs(corpus)
    stream = tokenize_stream(tokenizer, data.corpus(corpus).joiner.join(docs))
    bos = tokenizer.bos_token_id if needs_bos(tokenizer) else None
    ids = windows(stream, n_samples, seqlen, bos, np.random.default_rng(seed))
    info = {"corpus": corpus, "split": split, "documents": len(docs), "excluded_eval_documents": excluded,
            "stream_tokens": int(len(stream)), "n_samples": n_samples, "seqlen": seqlen, "seed": seed,
            "bos": bos is not None, "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer)}
    return ids, info


def check_fingerprint(info: dict, tokenizer) -> None:
    """Windows carry their tokenizer's fingerprint: ids from another vocabulary would be silently wrong."""
    have = tokenizer_fingerprint(tokenizer)
    if info.get("tokenizer_fingerprint") != have:
        raise CalibrationError(f"the calibration windows were tokenized by another tokenizer "
                               f"({info.get('tokenizer_fingerprint')} != {have}): re-run sample_calibration "
                               "(dvc repro -f sample_calibration)")
