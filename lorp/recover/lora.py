"""LoRA healing of a pruned model (Shortened LLaMA, Kim et al. 2024; ../shared/docs/recovery.md sec. 2).

Low-rank adapters on every linear projection inside the decoder blocks (attention and MLP; the LM head and the
embeddings stay as they are) are trained with the causal-LM loss, then merged into the weights, so the healed
checkpoint is a plain one of the same class and architecture: it loads with `from_pretrained` and no peft.
"""

import time

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from tqdm.auto import tqdm
from transformers.pytorch_utils import Conv1D

from lorp.errors import LorpError
from lorp.model.blocks import locate_blocks

LOSS_WINDOW = 5  # steps averaged into loss_first / loss_last and the progress bar's running loss


class LoraError(LorpError, ValueError):
    pass


def check_args(ids: np.ndarray, *, rank: int, alpha: float, lr: float, steps: int, batch_size: int) -> None:
    """Refuse settings that cannot train before the model is touched."""
    for key, value, ok, need in (("rank", rank, rank >= 1, "an integer >= 1 (8 is the usual choice)"),
                                 ("alpha", alpha, alpha > 0, "> 0 (the adapters' scale is alpha / rank)"),
                                 ("lr", lr, lr > 0, "> 0 (e.g. 1e-4)"),
                                 ("steps", steps, steps >= 1, "an integer >= 1"),
                                 ("batch_size", batch_size, batch_size >= 1, "an integer >= 1")):
        if not ok:
            raise LoraError(f"recovery.lora_{key} = {value!r}: it must be {need}")
    shape = np.shape(ids)
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 2:
        raise LoraError(f"the LoRA training windows (ids) have shape {shape}: they must be a 2-D array of token ids "
                        "with at least one window of at least 2 tokens (the loss predicts each token from the ones "
                        "before it)")


def target_modules(model: nn.Module) -> tuple[list[str], bool]:
    """(full names of the linear projections inside the decoder blocks, whether they are GPT-2 style Conv1D).

    Naming them, rather than peft's "all-linear", keeps adapters inside the blocks on every architecture; Conv1D
    stores its weight transposed, which peft must be told (fan_in_fan_out)."""
    path, blocks = locate_blocks(model)
    found = [(f"{path}.{i}.{name}", isinstance(module, Conv1D)) for i, block in enumerate(blocks)
             for name, module in block.named_modules() if isinstance(module, (nn.Linear, Conv1D))]
    if not found:
        raise LoraError(f"{type(model).__name__}: no linear projection inside its decoder blocks for LoRA to adapt")
    return [name for name, _ in found], any(conv for _, conv in found)


def train_adapters(model, ids: np.ndarray, *, rank: int, alpha: float, lr: float, steps: int, batch_size: int,
                   seed: int, progress: bool = True) -> tuple[PeftModel, dict]:
    """(peft model wrapping `model`, record): `steps` AdamW steps of `batch_size` windows on the adapters only.

    The windows are cycled in one seeded order, so fewer windows than steps * batch_size is fine and a rerun with
    the same seed repeats every step. `model` is changed in place (adapters injected, its own weights frozen) and
    the returned wrapper is left in eval mode."""
    check_args(ids, rank=rank, alpha=alpha, lr=lr, steps=steps, batch_size=batch_size)
    start = time.perf_counter()
    targets, conv1d = target_modules(model)
    torch.manual_seed(seed)  # adapter init (and any dropout of the base model) repeat with the seed
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none",
                                                  target_modules=targets, fan_in_fan_out=conv1d))
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr)
    order = np.random.default_rng(seed).permutation(len(ids))
    device = next(model.parameters()).device
    losses: list[float] = []
    peft_model.train()
    try:  # enable_grad: a caller inside torch.no_grad() must not silently train nothing
        with torch.enable_grad(), tqdm(range(steps), desc="lora", unit="step", disable=not progress) as bar:
            for step in bar:
                rows = order.take(np.arange(step * batch_size, (step + 1) * batch_size), mode="wrap")
                batch = torch.as_tensor(ids[rows], dtype=torch.long, device=device)
                loss = peft_model(input_ids=batch, labels=batch, use_cache=False).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{np.mean(losses[-LOSS_WINDOW:]):.4f}")
    finally:
        peft_model.eval()
    window = min(LOSS_WINDOW, steps)
    seqlen = int(ids.shape[1])
    return peft_model, {"rank": rank, "alpha": alpha, "lr": lr, "steps": steps, "batch_size": batch_size,
                        "seqlen": seqlen, "tokens": steps * batch_size * seqlen, "seed": seed,
                        "loss_first": round(float(np.mean(losses[:window])), 4),
                        "loss_last": round(float(np.mean(losses[-window:])), 4),
                        "losses": [round(x, 4) for x in losses], "trainable_params": sum(p.numel() for p in trainable),
                        "seconds": round(time.perf_counter() - start, 2)}


def merge(peft_model: PeftModel):
    """The adapters folded into the weights: the plain base model, in eval mode with gradients off."""
    model = peft_model.merge_and_unload()
    model.requires_grad_(False)
    return model.eval()


def heal(model, ids: np.ndarray, *, rank: int, alpha: float, lr: float, steps: int, batch_size: int, seed: int,
         progress: bool = True) -> tuple[nn.Module, dict]:
    """(healed model, record): LoRA trained on the pruned `model` and merged into it.

    `model` is modified in place and is the returned model (no second copy is made); keep no other reference to
    it as the unhealed one."""
    peft_model, record = train_adapters(model, ids, rank=rank, alpha=alpha, lr=lr, steps=steps,
                                        batch_size=batch_size, seed=seed, progress=progress)
    return merge(peft_model), record
