"""Tiny random-weight models built from configs, for tests that need a real forward pass."""

import json
import os
from pathlib import Path

import pytest
import torch
import transformers

TINY = {"vocab_size": 128, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 6,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
        "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}

ARCHS = {
    "llama": ("LlamaConfig", {}),
    "gemma3": ("Gemma3TextConfig", {"head_dim": 8, "sliding_window": 4, "sliding_window_pattern": 3,
                                    "query_pre_attn_scalar": 8}),
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
    """The offline dataset mirror (LORP_DATA_DIR, or ../shared/data beside the checkout)."""
    root = Path(os.environ.get("LORP_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (root / "MANIFEST.md").exists():
        pytest.skip("dataset mirror not found: set LORP_DATA_DIR")
    os.environ["LORP_DATA_DIR"] = str(root)
    return root


def tiny_tokenizer(mirror: Path, vocab_size: int = 256):
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
