"""Calibration windows: n_samples x seqlen token ids drawn, without overlap, from one corpus."""

import functools
from pathlib import Path

import numpy as np

from lorp.data import sources
from lorp.data.corpora import corpus
from lorp.data.tokens import bos_id, tokenize_stream, tokenizer_fingerprint, windows
from lorp.errors import LorpError


class CalibrationError(LorpError, ValueError):
    pass


@functools.lru_cache(maxsize=4)
def _stream(tokenizer, name: str, mirror: Path | None) -> tuple[np.ndarray, str, int, int]:
    """The corpus tokenized once per tokenizer: the study draws many windows from the same stream."""
    docs, split, excluded = sources.calibration_docs(name, mirror)
    return tokenize_stream(tokenizer, corpus(name).joiner.join(docs)), split, len(docs), excluded


def sample(tokenizer, corpus: str, n_samples: int, seqlen: int, seed: int, mirror: Path | None
           ) -> tuple[np.ndarray, dict]:
    stream, split, documents, excluded = _stream(tokenizer, corpus, mirror)
    bos = bos_id(tokenizer)
    ids = windows(stream, n_samples, seqlen, bos, np.random.default_rng(seed))
    info = {"corpus": corpus, "split": split, "documents": documents, "excluded_eval_documents": excluded,
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
