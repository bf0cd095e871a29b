"""A recovered plan written as a plain checkpoint of the base architecture, checked against its in-memory form."""

import copy
from collections.abc import Sequence
from pathlib import Path

from lorp.model.patches import Patch, apply
from lorp.model.prune import PruneError, max_logit_diff, probe_ids, remove_blocks, write_checkpoint

TOLERANCE = 1e-4  # max |logit difference| between the written model and the dense model patched and bypassed


def recovered_model(model, removed: Sequence[int], patch: Patch):
    """A pruned copy of model with the patch written into its weights; model is left as it was."""
    copied = copy.deepcopy(model)
    apply(copied, patch)
    return remove_blocks(copied, list(removed))


def save_recovered(model, tokenizer, removed: Sequence[int], patch: Patch, folder: Path, record: dict) -> float:
    """Write the recovered plan into folder and return its logit check; refuses (PruneError) a checkpoint that
    differs from its in-memory form."""
    pruned = recovered_model(model, removed, patch)
    diff = max_logit_diff(pruned, model, list(removed), probe_ids(model), patch)
    if diff > TOLERANCE:
        raise PruneError(f"{record.get('name')}: the recovered checkpoint's logits differ from the patched dense "
                         f"model's by {diff:.2e} (> {TOLERANCE})")
    write_checkpoint(pruned, tokenizer, folder, record | {"max_abs_logit_diff_vs_patched": diff})
    return diff
