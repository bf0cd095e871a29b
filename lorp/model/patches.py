"""A recovered plan seen from the dense model: its removed blocks plus the parameters recovery changed (a patch).

Recovery (lorp.recover) changes a few weights of the pruned model. Expressed on the dense model, as new values of
some of its parameters, a recovered plan runs through the same in-memory engine as any plan (the dense pass's
recorded states, removed blocks bypassed) and resumes at the first block whose weights or input changed. The patch
is read back from the written checkpoint itself, so what is evaluated is exactly what a user loads.
"""

import contextlib
import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from typing import NamedTuple

import torch

from lorp.errors import LorpError
from lorp.model.blocks import locate_blocks

Patch = Mapping[str, torch.Tensor]  # {dense parameter name: its new value}


class PatchError(LorpError, ValueError):
    pass


class Run(NamedTuple):
    """One distinct way to run the dense model: blocks bypassed, parameters patched, and where the forward resumes."""

    removed: frozenset[int]
    patch: Patch
    start: int


def fingerprint(patch: Patch) -> str:
    """Equal for patches of equal names and values (plans of equal blocks get equal linear fits)."""
    digest = hashlib.sha1()
    for name in sorted(patch):
        digest.update(name.encode())
        digest.update(patch[name].detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def seconds_per_plan(keys: Mapping[str, tuple], run_seconds: Mapping[tuple, float]) -> dict[str, float]:
    """{plan: the seconds its distinct run took}, charged to the first plan of each run: a plan identical to an
    earlier one cost nothing more, so the values add up to the runs' time."""
    charged: set[tuple] = set()
    out = {}
    for name, key in keys.items():
        out[name] = 0.0 if key in charged else run_seconds.get(key, 0.0)
        charged.add(key)
    return out


def distinct_runs(model, plans: Mapping[str, Collection[int]], patches: Mapping[str, Patch] | None = None
                  ) -> tuple[dict[str, tuple], dict[tuple, Run]]:
    """({plan: key}, {key: Run}): each distinct (removed blocks, patch) once, the dense model (nothing changed)
    first, so engines that resume from the dense pass's states meet it before the plans."""
    patches = patches or {}
    if unknown := sorted(set(patches) - set(plans)):
        raise PatchError(f"patches for plans {unknown} that are not among the plans")
    keys, runs = {}, {}
    for name, removed in plans.items():
        patch = patches.get(name, {})
        key = (frozenset(removed), fingerprint(patch) if patch else "")
        keys[name] = key
        if key not in runs:
            runs[key] = Run(frozenset(removed), patch, first_changed_block(model, removed, patch))
    order = sorted(runs, key=lambda k: bool(k[0]) or bool(k[1]))
    return keys, {k: runs[k] for k in order}


def block_of(model, name: str) -> int | None:
    """The block a parameter name belongs to, None for one outside the blocks (embeddings, final norm, head)."""
    path, _ = locate_blocks(model)
    match = re.match(re.escape(path) + r"\.(\d+)\.", name)
    return int(match.group(1)) if match else None


def first_changed_block(model, removed: Iterable[int], patch: Patch) -> int:
    """The first block whose input or weights differ from the dense model's: where a plan's forward resumes."""
    blocks = [block_of(model, name) for name in patch]
    if None in blocks:
        return 0
    changed = set(removed) | set(blocks)
    return min(changed) if changed else len(locate_blocks(model)[1])


@contextlib.contextmanager
def patched(model, patch: Patch):
    """The model with the patch's values in place of its own parameters, restored on exit (exceptions included)."""
    params = dict(model.named_parameters(remove_duplicate=False))
    if unknown := sorted(set(patch) - set(params)):
        raise PatchError(f"the patch names parameters the model lacks: {unknown[:3]}")
    saved = {}
    try:
        for name, value in patch.items():
            param = params[name]
            if param.device.type == "meta":
                raise PatchError(f"{name} is offloaded (device: auto): recovered plans are evaluated on one device; "
                                 "use device cpu or cuda for the model")
            if value.shape != param.shape:
                raise PatchError(f"patch {name} has shape {tuple(value.shape)}, the model's {tuple(param.shape)}")
            saved[name] = param.data
            param.data = value.to(device=param.device, dtype=param.dtype)
        yield model
    finally:
        for name, data in saved.items():
            params[name].data = data


def apply(model, patch: Patch) -> None:
    """Write the patch into the model for good (a copy about to be pruned and saved)."""
    params = dict(model.named_parameters(remove_duplicate=False))
    for name, value in patch.items():
        params[name].data = value.to(device=params[name].device, dtype=params[name].dtype).clone()


@torch.no_grad()
def pruned_patch(model, pruned, kept: list[int]) -> dict[str, torch.Tensor]:
    """The parameters of a pruned (and recovered) model that differ from the dense model's, by dense name.

    The pruned model's block j is the dense model's block kept[j]; parameters equal to the dense ones are left out.
    Compared as loaded (`lorp.model.load.load_model`), not as stored: checkpoints may store legacy names.
    """
    path, blocks = locate_blocks(model)
    if any(not 0 <= b < len(blocks) for b in kept) or len(locate_blocks(pruned)[1]) != len(kept):
        raise PatchError(f"the pruned model has {len(locate_blocks(pruned)[1])} blocks and claims to keep {kept} of "
                         f"the dense model's {len(blocks)}: not a pruned copy of this model")
    dense = dict(model.named_parameters(remove_duplicate=False))
    prefix = re.compile(re.escape(path) + r"\.(\d+)\.")
    patch = {}
    for name, value in pruned.named_parameters(remove_duplicate=False):
        if match := prefix.match(name):
            name = f"{path}.{kept[int(match.group(1))]}.{name[match.end():]}"
        if name not in dense or dense[name].shape != value.shape:
            raise PatchError(f"the pruned model's {name} has no counterpart in the dense model: not a copy of it")
        if not torch.equal(value.detach().to(dense[name].device, dense[name].dtype), dense[name].detach()):
            patch[name] = value.detach()
    return patch
