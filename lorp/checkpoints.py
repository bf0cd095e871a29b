"""The models a run compares: the dense checkpoint and every pruned plan, in one place for every evaluation."""

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from torch import nn
from tqdm.auto import tqdm

from lorp.io import read_json
from lorp.models import load_model

T = TypeVar("T")


def checkpoints(model: str | Path, pruned: str | Path) -> dict[str, tuple[Path, tuple[int, ...]]]:
    """{"dense": (model, ()), plan name: (checkpoint folder, removed blocks), ...} in the prune stage's order."""
    index = read_json(Path(pruned) / "index.json")
    pruned_models = {name: (Path(pruned) / name, tuple(r["removed"])) for name, r in index.items()}
    return {"dense": (Path(model), ())} | pruned_models


def evaluate_each(models: dict[str, tuple[Path, tuple[int, ...]]], *, dtype: str, device: str,
                  fn: Callable[[nn.Module], T]) -> dict[str, T]:
    """fn(model) for every checkpoint, loaded one at a time; identical plans (ShortGPT and Streamline often agree)
    are loaded and scored once and share the result."""
    done: dict[tuple[int, ...], T] = {}
    for path, removed in tqdm(models.values(), desc="models", unit="model"):
        if removed not in done:
            model = load_model(path, dtype, device)
            done[removed] = fn(model)
            del model
    return {name: done[removed] for name, (_, removed) in models.items()}
