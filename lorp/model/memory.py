"""Handing freed memory back to the system, so a later peak measures what is still in use."""

import contextlib
import ctypes
import gc

import torch


def free_memory() -> None:
    """Collect garbage and hand freed memory back (CUDA cache; glibc heap): CPython and the tokenizers' Rust heap
    free into glibc, which keeps the pages (RSS) unless trimmed."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
