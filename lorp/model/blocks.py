"""The decoder blocks of a loaded model: where they live, what enters them, and running the model without some.

Every stage finds blocks through `locate_blocks` and reads their input through `block_input`, so one new
architecture needs one entry here, not one per stage.
"""

import contextlib

import torch
from torch import nn

from lorp.errors import LorpError

# Where decoder blocks live, in the order tried. The first attribute path that resolves wins.
BLOCK_PATHS = ("model.layers", "model.language_model.layers", "model.decoder.layers",
               "transformer.h", "gpt_neox.layers")


class BlockError(LorpError, RuntimeError):
    pass


def locate_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """(attribute path, ModuleList) of the decoder blocks; the one block locator every stage uses."""
    for path in BLOCK_PATHS:
        obj = model
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return path, obj
    raise BlockError(f"{type(model).__name__}: no decoder blocks at any of {', '.join(BLOCK_PATHS)}; "
                     "add its path to lorp.model.blocks.BLOCK_PATHS")


def block_input(args: tuple, kwargs: dict) -> torch.Tensor:
    """The hidden state a block was called with, positional or `hidden_states=`."""
    if args and torch.is_tensor(args[0]):
        return args[0]
    if torch.is_tensor(kwargs.get("hidden_states")):
        return kwargs["hidden_states"]
    raise BlockError("a block was called without its hidden states as first argument or `hidden_states=`: "
                     "this architecture needs its own case in lorp.model.blocks.block_input")


@contextlib.contextmanager
def skip_blocks(model: nn.Module, skipped):
    """Run the model as if the skipped blocks were removed: each passes its input through unchanged.

    This is the reference a pruned checkpoint must match, and the in-memory way to score a plan.
    """
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
