"""Materialize a plan: a model that computes exactly the original minus the removed blocks.

Three things must follow the blocks (the authors' code updates none): config.num_hidden_layers,
every per-layer config list (e.g. layer_types, sliding vs full attention), and each kept block's
layer_idx, which indexes the KV cache.
"""

import copy
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from lorp.errors import LorpError
from lorp.io import staged_dir, write_json
from lorp.model.blocks import locate_blocks, skip_blocks
from lorp.model.patches import Patch, patched

# Config fields holding one entry per block, subset to the kept blocks.
PER_LAYER_FIELDS = ("layer_types", "no_rope_layers", "sliding_window_pattern_list")


class PruneError(LorpError, ValueError):
    pass


def per_layer_fields(config, n: int) -> list[str]:
    """Names of the config's per-layer lists; an unknown list of length n is refused, not guessed."""
    fields = []
    for name, value in config.to_dict().items():
        if isinstance(value, (list, tuple)) and len(value) == n:
            if name not in PER_LAYER_FIELDS:
                raise PruneError(f"config.{name} has one entry per block ({n}) and lorp does not know how to "
                                 f"subset it; add it to lorp.model.prune.PER_LAYER_FIELDS if it is per-layer")
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


@torch.no_grad()
def max_logit_diff(pruned: nn.Module, original: nn.Module, removed: list[int], ids: torch.Tensor,
                   patch: Patch | None = None) -> float:
    """Max |logit difference| of pruned against the original with the removed blocks skipped (and, for a recovered
    plan, the weights its recovery changed in place): what a written checkpoint must reproduce."""
    with patched(original, patch or {}), skip_blocks(original, removed):
        ref = original(input_ids=ids.to(original.device), use_cache=False).logits
    return float((pruned(input_ids=ids.to(pruned.device), use_cache=False).logits.to(ref.device) - ref).abs().max())


def probe_ids(model: nn.Module, length: int = 32) -> torch.Tensor:
    """Fixed random token ids (seed 0) the checkpoint checks run on."""
    vocab = model.config.get_text_config().vocab_size
    return torch.randint(0, vocab, (1, length), generator=torch.Generator().manual_seed(0))


def write_checkpoint(model: nn.Module, tokenizer, folder: Path, record: dict) -> None:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_json(folder / "pruning.json", record)


def save(model: nn.Module, tokenizer, out_dir: str | Path, record: dict) -> None:
    """Write checkpoint + tokenizer + pruning.json into out_dir, replacing it only once complete."""
    with staged_dir(out_dir) as staging:
        write_checkpoint(model, tokenizer, staging, record)


def prune_all(original: nn.Module, tokenizer, plans: list[dict], out_dir: str | Path, provenance: dict,
              tolerance: float = 1e-4) -> dict[str, dict]:
    """Every plan as a checkpoint under out_dir (plus index.json), each checked against the skip-blocks original.

    The whole folder is built beside out_dir and renamed into place at the end, so an interrupted run leaves
    no partial set of checkpoints. provenance (library versions, device) goes into every pruning.json.
    """
    probe = probe_ids(original)
    index = {}
    with staged_dir(out_dir) as staging:
        for plan in tqdm(plans, desc="prune", unit="plan"):
            pruned = remove_blocks(copy.deepcopy(original), plan["removed"])
            diff = max_logit_diff(pruned, original, plan["removed"], probe)
            if diff > tolerance:
                raise PruneError(f"{plan['name']}: pruned logits differ from the skip-blocks model by {diff}")
            record = {k: plan[k] for k in ("name", "method", "budget", "num_blocks", "removed", "kept")}
            record |= {"max_abs_logit_diff_vs_skip": diff, **provenance}
            write_checkpoint(pruned, tokenizer, staging / plan["name"], record)
            index[plan["name"]] = record
            del pruned
        write_json(staging / "index.json", index)
    return index
