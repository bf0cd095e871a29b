"""The checkpoints a run writes: the dense model and every pruned plan, as the benchmark measures them."""

from pathlib import Path

from lorp.io import read_json


def checkpoints(model: str | Path, pruned: str | Path) -> dict[str, tuple[Path, tuple[int, ...]]]:
    """{"dense": (model, ()), plan name: (checkpoint folder, removed blocks), ...} in the prune stage's order."""
    index = read_json(Path(pruned) / "index.json")
    pruned_models = {name: (Path(pruned) / name, tuple(r["removed"])) for name, r in index.items()}
    return {"dense": (Path(model), ())} | pruned_models
