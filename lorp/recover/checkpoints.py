"""A recovered plan written as a plain checkpoint of the base architecture, checked against its in-memory form."""

import copy
from collections.abc import Sequence
from pathlib import Path

import torch

from lorp.model.blocks import skip_blocks
from lorp.model.patches import Patch, apply, patched
from lorp.model.prune import PruneError, remove_blocks, write_checkpoint

TOLERANCE = 1e-4  # max |logit difference| between the written model and the dense model patched and bypassed


def recovered_model(model, removed: Sequence[int], patch: Patch):
    """A pruned copy of model with the patch written into its weights; model is left as it was."""
    copied = copy.deepcopy(model)
    apply(copied, patch)
    return remove_blocks(copied, list(removed))


@torch.no_grad()
def max_logit_diff(pruned, model, removed: Sequence[int], patch: Patch, ids: torch.Tensor) -> float:
    """The pruned model against the dense one with the patch in place and the removed blocks bypassed."""
    with patched(model, patch), skip_blocks(model, removed):
        want = model(input_ids=ids, use_cache=False).logits
    return float((pruned(input_ids=ids.to(pruned.device), use_cache=False).logits.to(want.device) - want).abs().max())


def probe_ids(model, length: int = 32) -> torch.Tensor:
    vocab = model.config.get_text_config().vocab_size
    return torch.randint(0, vocab, (1, length), generator=torch.Generator().manual_seed(0))


def save_recovered(model, tokenizer, removed: Sequence[int], patch: Patch, folder: Path, record: dict) -> float:
    """Write the recovered plan into folder; refuses (PruneError) when it differs from its in-memory form."""
    pruned = recovered_model(model, removed, patch)
    diff = max_logit_diff(pruned, model, removed, patch, probe_ids(model).to(next(model.parameters()).device))
    if diff > TOLERANCE:
        raise PruneError(f"{record.get('name')}: the recovered checkpoint's logits differ from the patched dense "
                         f"model's by {diff:.2e} (> {TOLERANCE})")
    write_checkpoint(pruned, tokenizer, folder, record | {"max_abs_logit_diff_vs_patched": diff})
    return diff  # the caller's record gets it too
