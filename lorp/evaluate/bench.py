"""Efficiency of the dense model and its pruned checkpoints: size, memory, speed, and the speed-up FLOPs promise.

Depth pruning removes whole blocks, so its payoff is wall-clock speed and memory, not only perplexity. Measured
speed-ups are reported next to the ideal one (the FLOPs ratio), so a gap between them is visible, not hidden.
"""

import json
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from lorp.evaluate.flops import flops_per_token
from lorp.io import write_json, write_text
from lorp.model.load import load_config, load_model
from lorp.model.memory import free_memory
from lorp.select.methods import ONE_PASS

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def count_parameters(model: nn.Module) -> int:
    """Unique parameters (a tied embedding / LM head counts once, as stored)."""
    return sum(p.numel() for p in model.parameters())


def checkpoint_bytes(folder: str | Path) -> int:
    """Bytes of the folder's weight files (*.safetensors, *.bin); tokenizer and config files excluded."""
    return sum(f.stat().st_size for f in Path(folder).iterdir() if f.is_file() and f.suffix in WEIGHT_SUFFIXES)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], float | None], device: torch.device, repeats: int, warmup: int) -> tuple[float, float]:
    """Median wall time of fn over repeats runs after warmup runs, and their spread ((max - min) / median), which
    shows how far the machine's noise reaches; fn may return its own timed seconds."""
    times = []
    for i in range(warmup + repeats):
        _sync(device)
        start = time.perf_counter()
        inner = fn()
        _sync(device)
        elapsed = inner if inner is not None else time.perf_counter() - start
        if i >= warmup:
            times.append(elapsed)
    median = statistics.median(times)
    return median, (max(times) - min(times)) / median


def _vm_hwm() -> int:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def _reset_peak(cuda_devices: list[torch.device]) -> str:
    """Reset the peak counter; returns the kind of peak it will measure."""
    if cuda_devices:
        for d in cuda_devices:
            torch.cuda.reset_peak_memory_stats(d)
        return "cuda_allocated"
    try:  # Linux: writing 5 to clear_refs resets the process's peak RSS (VmHWM) to its current RSS.
        Path("/proc/self/clear_refs").write_text("5")
        _vm_hwm()
        return "cpu_rss"
    except (OSError, AttributeError):
        return "cpu_rss_lifetime"  # cannot reset: the process's lifetime peak, an upper bound


def _read_peak(kind: str, cuda_devices: list[torch.device]) -> int:
    if kind == "cuda_allocated":
        return sum(torch.cuda.max_memory_allocated(d) for d in cuda_devices)
    if kind == "cpu_rss":
        return _vm_hwm()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@torch.no_grad()
def measure(model: nn.Module, *, batch: int, seqlen: int, new_tokens: int, prompt_len: int, repeats: int,
            warmup: int, seed: int = 0) -> dict:
    """Prefill and decode throughput (median of repeats after warmup) and peak memory of one loaded model.

    Prefill: one forward over batch x seqlen random token ids, use_cache=False.
    Decode: a greedy manual loop of new_tokens steps with the KV cache after a prompt_len prompt; only the loop is
    timed, so the prompt's prefill is excluded and the loop cannot stop early.
    Peak memory covers both measurements, weights included: CUDA max_memory_allocated ("cuda_allocated"), or on CPU
    the process peak RSS reset just before ("cpu_rss": the whole process, interpreter and torch runtime included;
    "cpu_rss_lifetime" where the peak cannot be reset).
    """
    limit = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    if limit is not None and max(seqlen, prompt_len + new_tokens + 1) > limit:
        raise ValueError(f"seqlen {seqlen} / prompt_len + new_tokens {prompt_len + new_tokens} exceed the model's "
                         f"{limit} positions")
    model.eval()
    device = model.get_input_embeddings().weight.device
    cuda_devices = sorted({p.device for p in model.parameters() if p.device.type == "cuda"}, key=str)
    vocab = model.config.get_text_config().vocab_size
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, seqlen), generator=gen).to(device)
    prompt = torch.randint(0, vocab, (batch, prompt_len), generator=gen).to(device)

    def decode() -> float:
        out = model(input_ids=prompt, use_cache=True)
        past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        _sync(device)
        start = time.perf_counter()
        for _ in range(new_tokens):
            out = model(input_ids=token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        _sync(device)
        return time.perf_counter() - start

    def prefill() -> None:
        model(input_ids=ids, use_cache=False)

    free_memory()
    kind = _reset_peak(cuda_devices)
    prefill_s, prefill_spread = _timed(prefill, device, repeats, warmup)
    decode_s, decode_spread = _timed(decode, device, repeats, warmup)
    return {"parameters": count_parameters(model), "peak_memory_bytes": _read_peak(kind, cuda_devices),
            "peak_memory_kind": kind, "prefill_seconds": prefill_s, "decode_seconds": decode_s,
            "prefill_tokens_per_s": batch * seqlen / prefill_s, "decode_tokens_per_s": batch * new_tokens / decode_s,
            "prefill_spread": prefill_spread, "decode_spread": decode_spread,
            "flops_per_token": flops_per_token(model, seqlen)}


def benchmark(checkpoints: Sequence[tuple[str, str | Path]], *, dtype: str, device: str, batch: int, seqlen: int,
              new_tokens: int, prompt_len: int, repeats: int, warmup: int, seed: int = 0) -> list[dict]:
    """One JSON-serialisable row per (name, checkpoint folder); the first entry is the reference (the dense model).

    Models are loaded one at a time and freed before the next. Speed-ups are reference time / model time
    (1.0 for the reference); ideal_speedup = reference flops_per_token / model flops_per_token at seqlen.
    """
    if not checkpoints:
        raise ValueError("benchmark needs at least the dense checkpoint")
    rows = []
    for name, folder in tqdm(checkpoints, desc="bench", unit="model"):
        model = load_model(folder, dtype, device)
        blocks = model.config.get_text_config().num_hidden_layers
        m = measure(model, batch=batch, seqlen=seqlen, new_tokens=new_tokens, prompt_len=prompt_len, repeats=repeats,
                    warmup=warmup, seed=seed)
        run_device = str(model.get_input_embeddings().weight.device)
        del model
        free_memory()
        ref = rows[0] if rows else None
        rows.append({
            "name": name, "blocks": blocks, "parameters": m["parameters"], "checkpoint_bytes": checkpoint_bytes(folder),
            "peak_memory_bytes": m["peak_memory_bytes"], "peak_memory_kind": m["peak_memory_kind"],
            "prefill_tokens_per_s": round(m["prefill_tokens_per_s"], 2),
            "decode_tokens_per_s": round(m["decode_tokens_per_s"], 2),
            "prefill_speedup": round(m["prefill_tokens_per_s"] / ref["_prefill"], 4) if ref else 1.0,
            "decode_speedup": round(m["decode_tokens_per_s"] / ref["_decode"], 4) if ref else 1.0,
            "ideal_speedup": ref["flops_per_token"] / m["flops_per_token"] if ref else 1.0,
            "prefill_spread": round(m["prefill_spread"], 4), "decode_spread": round(m["decode_spread"], 4),
            "flops_per_token": m["flops_per_token"], "device": run_device, "dtype": dtype, "batch": batch,
            "seqlen": seqlen, "new_tokens": new_tokens, "prompt_len": prompt_len, "repeats": repeats,
            "warmup": warmup, "_prefill": m["prefill_tokens_per_s"], "_decode": m["decode_tokens_per_s"]})
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]


def architecture(folder: str | Path, longest: int) -> str:
    """The checkpoint's config.json as canonical text: plans whose configs agree have the same blocks in the same
    order with same-shaped weights, so they run the same operations and time alike up to the machine's noise.
    The folder the config was read from is not part of it, nor are the layers' attention types when no sequence
    timed (`longest` tokens) is longer than the sliding window: a sliding layer then attends to every token a full
    one does, with the same weights and operations."""
    config = load_config(folder).to_dict()
    config.pop("_name_or_path", None)
    text = config.get("text_config") or config
    if text.get("sliding_window") and longest <= text["sliding_window"]:
        text.pop("layer_types", None)
    return json.dumps(config, sort_keys=True, default=str)


def benchmark_plans(models: dict[str, tuple[str | Path, tuple[int, ...]]], **settings) -> list[dict]:
    """benchmark() over lorp.model.checkpoints' {name: (folder, removed)}, the dense model first. Each distinct
    architecture is measured once (every plan of a budget has the same config; Gemma-3's differ by their layers'
    attention types, which only matter past the sliding window): its rows share the timings, under their own
    names, checkpoint bytes, and `measured_as`, the plan that was timed."""
    longest = max(settings["seqlen"], settings["prompt_len"] + settings["new_tokens"])
    archs = {name: architecture(folder, longest) for name, (folder, _) in models.items()}
    first: dict[str, str] = {}
    for name, arch in archs.items():
        first.setdefault(arch, name)
    rows = {row["name"]: row for row in benchmark([(n, models[n][0]) for n in first.values()], **settings)}
    return [rows[first[archs[name]]] | {"name": name, "measured_as": first[archs[name]],
                                        "checkpoint_bytes": checkpoint_bytes(folder)}
            for name, (folder, _) in models.items()]


def selection_cost(timing: dict, methods: Sequence[str]) -> dict:
    """Calibration cost of selection: each method's original code runs its own calibration pass; here the methods
    that select from hidden-state similarity share one.

    timing is the similarity stage's record {"windows", "tokens", "seconds", "tokens_per_second"}.
    """
    shared = [m for m in methods if m in ONE_PASS]  # the others: no pass, or their own
    seconds = float(timing["seconds"])
    return {"methods": shared, "one_pass_seconds": seconds, "tokens_per_second": timing["tokens_per_second"],
            "per_method_passes_seconds": seconds * len(shared), "saving_factor": len(shared)}


def write_results(rows: list[dict], json_path: str | Path, csv_path: str | Path | None = None,
                  selection: dict | None = None) -> None:
    """JSON {"models": {name: row}, "selection_cost": {...}} and a CSV of the rows."""
    payload = {"models": {row["name"]: row for row in rows}}
    if selection is not None:
        payload["selection_cost"] = selection
    write_json(json_path, payload)
    if csv_path is not None:
        write_text(csv_path, pd.DataFrame(rows).to_csv(index=False))
