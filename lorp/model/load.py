"""The one way to load a model: a checkpoint folder (as fetch_model or prune wrote it) into memory."""

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from lorp.errors import LorpError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelError(LorpError, ValueError):
    pass


def check_checkpoint(path: str | Path) -> None:
    path = Path(path)
    if not (path / "config.json").exists():
        raise ModelError(f"{path} has no config.json: not a Hugging Face checkpoint folder")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise ModelError(f"{path} has no weights (*.safetensors or *.bin): re-run the stage that wrote it")


def load_config(path: str | Path):
    return AutoConfig.from_pretrained(path)


def load_model(path: str | Path, dtype: str = "float32", device: str = "cpu") -> PreTrainedModel:
    check_checkpoint(path)
    kwargs = {"device_map": "auto"} if device == "auto" else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype], **kwargs)
    except Exception as err:  # corrupt or truncated weights surface here with library-specific types
        raise ModelError(f"cannot load the checkpoint in {path}: {err}. Delete the folder and re-run its stage "
                         "(dvc repro -f <stage>)") from err
    if device != "auto":
        model.to(device)
    return model.eval()


def load_tokenizer(path: str | Path):
    return AutoTokenizer.from_pretrained(path)


def max_positions(config) -> int | None:
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)


def num_blocks(config) -> int:
    return config.num_hidden_layers
