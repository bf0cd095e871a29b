"""Tiny random-weight models built from configs, for tests that need a real forward pass."""

import json
import os
from pathlib import Path

import pytest
import torch
import transformers

TINY = {"vocab_size": 320, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 6,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
        "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
SLIDING = {"sliding_window": 4}
GEMMA = {"head_dim": 8, "query_pre_attn_scalar": 8, **SLIDING}

# The architecture matrix: config class and what makes it differ from plain Llama.
ARCHS = {
    "llama": ("LlamaConfig", {}),
    "mistral": ("MistralConfig", SLIDING),
    "qwen2": ("Qwen2Config", {}),
    "qwen3": ("Qwen3Config", {"head_dim": 8}),
    "qwen3-sliding": ("Qwen3Config", {"head_dim": 8, "use_sliding_window": True, "max_window_layers": 2,
                                      **SLIDING}),
    "gemma2": ("Gemma2Config", GEMMA),
    "gemma3": ("Gemma3TextConfig", {**GEMMA, "sliding_window_pattern": 3}),
    "olmo2": ("Olmo2Config", {}),
    "olmo3": ("Olmo3Config", SLIDING),
    "phi3": ("Phi3Config", {"original_max_position_embeddings": 128}),
    "gpt2": ("GPT2Config", {"n_embd": 32, "n_layer": 6, "n_head": 4, "n_positions": 128}),
    "gpt_neox": ("GPTNeoXConfig", {}),
}


def tiny_config(arch: str, **overrides):
    name, extra = ARCHS[arch]
    return getattr(transformers, name)(**{**TINY, **extra, **overrides})


def tiny_model(arch: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(tiny_config(arch, **overrides), dtype=torch.float32)
    return model.eval()


@pytest.fixture(params=sorted(ARCHS))
def arch(request):
    return request.param


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The offline dataset mirror, passed to the readers as their `mirror` argument: ../shared/data beside the
    checkout (params.yaml's data.mirror), or the folder LORP_DATA_DIR names for this test run only."""
    root = Path(os.environ.get("LORP_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (root / "MANIFEST.md").exists():
        pytest.skip("dataset mirror not found: put it at ../shared/data or set LORP_DATA_DIR for the tests")
    return root.resolve()


def tiny_tokenizer(mirror: Path, vocab_size: int = 300):
    """A byte-level BPE trained on the mirror's WikiText-2 validation split: small and offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    lines = [json.loads(line)["text"] for line in open(mirror / "wikitext-2-raw-v1" / "validation.jsonl")]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines[:2000], trainer)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                                eos_token="</s>")


@pytest.fixture(scope="session")
def tiny_checkpoint(mirror, tmp_path_factory) -> Path:
    """A tiny random Llama with a real tokenizer, saved as a checkpoint folder."""
    path = tmp_path_factory.mktemp("tiny") / "checkpoint"
    tokenizer = tiny_tokenizer(mirror)
    tiny_model("llama", vocab_size=len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_repro(tiny_checkpoint, mirror, tmp_path_factory) -> tuple[Path, str]:
    """The tiny project (pipeline_helpers.make_project) committed on branch main, reproduced once by `dvc repro`
    and its results committed: (project, the repro's log). The one full run of the tiny pipeline in the suite;
    test_pipeline, test_experiments and test_interrupt each work on a copy (pipeline_helpers.copy_project) and
    never change this one.

    Its params.yaml names the mirror relative to the project (data.mirror), so every copy must sit at the same
    depth below pytest's temporary root as this one: tmp_path_factory.mktemp(name) / "project" (or tmp_path /
    "project"); copy_project checks that the mirror still resolves."""
    from pipeline_helpers import make_project, run  # here, not at the top: pipeline_helpers imports this module

    project = make_project(tmp_path_factory.mktemp("tiny-repro") / "project", tiny_checkpoint, mirror)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "pipeline"], project)
    run(["git", "branch", "-M", "main"], project)
    log = run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "results"], project)
    return project, log
