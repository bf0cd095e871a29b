"""Materialize a plan: a model that computes exactly the original minus the removed blocks.

Three things must follow the blocks (the authors' code updates none): config.num_hidden_layers,
every per-layer config list (e.g. layer_types, sliding vs full attention), and each kept block's
layer_idx, which indexes the KV cache.
"""

import contextlib
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from lorp.io import write_json
from lorp.models import locate_blocks
from lorp.similarity import block_input

# Config fields holding one entry per block, subset to the kept blocks.
PER_LAYER_FIELDS = ("layer_types", "no_rope_layers", "sliding_window_pattern_list")


class PruneError(ValueError):
    pass


def per_layer_fields(config, n: int) -> list[str]:
    """Names of the config's per-layer lists; an unknown list of length n is refused, not guessed."""
    fields = []
    for name, value in config.to_dict().items():
        if isinstance(value, (list, tuple)) and len(value) == n:
            if name not in PER_LAYER_FIELDS:
                raise PruneError(f"config.{name} has one entry per block ({n}) and lorp does not know how to "
                                 f"subset it; add it to lorp.prune.PER_LAYER_FIELDS if it is per-layer")
            fields.append(name)
    return fields


def remove_blocks(model: nn.Module, removed: list[int]) -> nn.Module:
    """Remove blocks in place and make config and layer indices consistent; returns the model."""
    path, blocks = locate_blocks(model)
    n = len(blocks)
    bad = [b for b in removed if not 0 <= b < n]
    if bad or len(set(removed)) != len(removed):
        raise PruneError(f"plan removes {removed}: blocks must be distinct and in 0..{n - 1}")
    if len(removed) >= n:
        raise PruneError(f"plan removes all {n} blocks")
    config = model.config
    fields = per_layer_fields(config, n)
    kept = [i for i in range(n) if i not in set(removed)]
    parent = model.get_submodule(path.rsplit(".", 1)[0]) if "." in path else model
    setattr(parent, path.rsplit(".", 1)[-1], nn.ModuleList([blocks[i] for i in kept]))
    for new_index, block in enumerate(getattr(parent, path.rsplit(".", 1)[-1])):
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    for name in fields:
        setattr(config, name, [getattr(config, name)[i] for i in kept])
    config.num_hidden_layers = len(kept)
    return model


@contextlib.contextmanager
def skip_blocks(model: nn.Module, skipped: list[int]):
    """The reference a pruned model must match: removed blocks pass their input through unchanged."""
    _, blocks = locate_blocks(model)

    def passthrough(module, args, kwargs, output):
        h = block_input(args, kwargs)
        return (h, *output[1:]) if isinstance(output, tuple) else h

    handles = [blocks[i].register_forward_hook(passthrough, with_kwargs=True) for i in skipped]
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def max_logit_diff(pruned: nn.Module, original: nn.Module, removed: list[int], ids: torch.Tensor) -> float:
    with skip_blocks(original, removed):
        ref = original(input_ids=ids, use_cache=False).logits
    return float((pruned(input_ids=ids, use_cache=False).logits - ref).abs().max())


def save(model: nn.Module, tokenizer, out_dir: str | Path, record: dict) -> None:
    """Write checkpoint + tokenizer + pruning.json into out_dir, replacing it only once complete."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
        staging = Path(tmp) / "checkpoint"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        write_json(staging / "pruning.json", record)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
