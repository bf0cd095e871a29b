"""Efficiency of the dense model and its pruned checkpoints: size, memory, speed, and the speed-up FLOPs promise.

Depth pruning removes whole blocks, so its payoff is wall-clock speed and memory, not only perplexity. Measured
speed-ups are reported next to the ideal one (the FLOPs ratio), so a gap between them is visible, not hidden.
"""

import contextlib
import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
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


PAIRED_DRAWS = 2000  # bootstrap resamples of the paired ratios behind each speed-up interval
BEST_OF = 3  # calls per pair member, the fastest kept: a preemption or a competing process only ever adds time
# More pairs where the first `repeats` leave an interval wider than TARGET_SPREAD of its median: MORE_PAIRS at a time
# (even, so as many AB as BA), up to MAX_PAIRS_FACTOR x repeats. 21 pairs gave +-2.9 to +-4.3 % on most
# architectures of this 2-core VM and +-5.2 % on one; the few that need it get more pairs, the rest none.
TARGET_SPREAD = 0.045
MORE_PAIRS = 6
MAX_PAIRS_FACTOR = 2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _once(fn: Callable[[], float | None], device: torch.device) -> float:
    """Wall seconds of one call (or the seconds fn timed itself, decode's loop without its prompt)."""
    _sync(device)
    start = time.perf_counter()
    inner = fn()
    _sync(device)
    return inner if inner is not None else time.perf_counter() - start


def _fastest(fn: Callable[[], float | None], device: torch.device) -> float:
    """The fastest of BEST_OF back-to-back calls: the model's own time with less of what interrupted it."""
    return min(_once(fn, device) for _ in range(BEST_OF))


def paired_ratios(reference: Callable, candidate: Callable, device: torch.device, pairs: int,
                  warmup: int) -> tuple[list[float], list[float]]:
    """(reference seconds / candidate seconds per pair, the candidate's seconds). The two run back to back in
    alternating order (AB, BA, ...): a drift of the machine's speed, or a competing process, slows both members
    of a pair alike and cancels in their ratio, which separate medians of separate runs do not. Each member's time
    is the fastest of BEST_OF calls, which drops most of a competing process's interruptions."""
    for _ in range(warmup):
        _once(reference, device), _once(candidate, device)
    ratios, seconds = [], []
    for i in range(pairs):
        if i % 2:
            c, r = _fastest(candidate, device), _fastest(reference, device)
        else:
            r, c = _fastest(reference, device), _fastest(candidate, device)
        ratios.append(r / c)
        seconds.append(c)
    return ratios, seconds


def median_interval(values: Sequence[float], seed: int = 0) -> tuple[float, float, float]:
    """(median, 2.5 %, 97.5 % bootstrap percentiles of the median) of values."""
    data = np.asarray(values, dtype=float)
    draws = np.random.default_rng(seed).choice(data, size=(PAIRED_DRAWS, len(data)))
    lo, hi = np.percentile(np.median(draws, axis=1), [2.5, 97.5])
    return float(np.median(data)), float(lo), float(hi)


def spread(values: Sequence[float], seed: int = 0) -> float:
    """The larger side of median_interval's 95 % interval over the median."""
    median, lo, hi = median_interval(values, seed)
    return max(median - lo, hi - median) / median


def speedup_pairs(reference: Callable, candidate: Callable, device: torch.device, repeats: int, warmup: int,
                  seed: int = 0) -> tuple[list[float], list[float]]:
    """paired_ratios for `repeats` pairs, then MORE_PAIRS more at a time while the interval is wider than
    TARGET_SPREAD of the median, up to MAX_PAIRS_FACTOR x repeats pairs: a noisy architecture gets the pairs it
    needs without every one paying for them."""
    ratios, seconds = paired_ratios(reference, candidate, device, repeats, warmup)
    while len(ratios) < MAX_PAIRS_FACTOR * repeats and spread(ratios, seed) > TARGET_SPREAD:
        more = min(MORE_PAIRS, MAX_PAIRS_FACTOR * repeats - len(ratios))
        extra, extra_seconds = paired_ratios(reference, candidate, device, more, 0)
        ratios, seconds = ratios + extra, seconds + extra_seconds
    return ratios, seconds


def _vm(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def activation_peak(run: Callable[[], object], device: torch.device) -> tuple[int, str]:
    """(bytes above the memory in use before it that one run of `run` peaks at, how measured): CUDA's allocator
    peak, or on CPU the process's peak RSS (VmHWM, reset by /proc/self/clear_refs) above its RSS before."""
    free_memory()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        return torch.cuda.max_memory_allocated(device) - before, "cuda_allocated"
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM back to the current RSS
    before = _vm("VmRSS")
    run()
    return max(_vm("VmHWM") - before, 0), "cpu_rss_delta"


def workloads(model: nn.Module, *, batch: int, seqlen: int, new_tokens: int, prompt_len: int,
              seed: int = 0) -> tuple[Callable[[], None], Callable[[], float]]:
    """(prefill, decode) of one model on token ids fixed by seed, so every model sees the same inputs.

    Prefill: one forward over batch x seqlen token ids, use_cache=False. Decode: a greedy loop of new_tokens steps
    with the KV cache after a prompt_len prompt; only the loop is timed (it returns its seconds), so the prompt's
    prefill is excluded and the loop cannot stop early.
    """
    limit = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    if limit is not None and max(seqlen, prompt_len + new_tokens + 1) > limit:
        raise ValueError(f"seqlen {seqlen} / prompt_len + new_tokens {prompt_len + new_tokens} exceed the model's "
                         f"{limit} positions")
    model.eval()
    device = model.get_input_embeddings().weight.device
    vocab = model.config.get_text_config().vocab_size
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, seqlen), generator=gen).to(device)
    prompt = torch.randint(0, vocab, (batch, prompt_len), generator=gen).to(device)

    @torch.no_grad()
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

    @torch.no_grad()
    def prefill() -> None:
        model(input_ids=ids, use_cache=False)

    return prefill, decode


def profile(model: nn.Module, seqlen: int, **settings) -> dict:
    """What one loaded model costs besides time: parameters, weight bytes, its activations' peak, FLOPs per token."""
    device = model.get_input_embeddings().weight.device
    prefill, decode = workloads(model, seqlen=seqlen, **settings)
    prefill(), decode()  # first calls allocate once per process (thread pools, kernels' workspaces): not the model's
    activations, kind = activation_peak(lambda: (prefill(), decode()), device)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"parameters": count_parameters(model), "weight_bytes": weights, "activation_bytes": activations,
            "peak_memory_bytes": weights + activations, "peak_memory_kind": f"weights + {kind}",
            "flops_per_token": flops_per_token(model, seqlen), "prefill": prefill, "decode": decode}


@contextlib.contextmanager
def cpu_threads(threads: int):
    """torch's CPU thread count set to `threads` inside (0: left as it is). On a machine with few cores, a timed
    model on every core shares each one with any competing process, and each of its parallel ops waits for its
    slowest thread; on fewer threads than cores, the scheduler gives the competitor a core of its own."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def benchmark(checkpoints: Sequence[tuple[str, str | Path]], *, dtype: str, device: str, batch: int, seqlen: int,
              new_tokens: int, prompt_len: int, repeats: int, warmup: int, threads: int = 0,
              seed: int = 0) -> list[dict]:
    """One JSON-serialisable row per (name, checkpoint folder); the first entry is the reference (the dense model).

    The reference stays loaded; each other model is loaded in turn and timed against it in `repeats` interleaved
    pairs (speedup_pairs: more where the interval is wide), for prefill and for decode. Its speed-up is the median
    of the paired ratios with a bootstrap 95 % interval; ideal_speedup = reference FLOPs per token / the model's at
    seqlen. Peak memory is the
    weights plus the activations' peak of one prefill and one decode, for each model on its own. Timings run on
    `threads` CPU threads (cpu_threads).
    """
    if not checkpoints:
        raise ValueError("benchmark needs at least the dense checkpoint")
    with cpu_threads(threads):
        settings = {"batch": batch, "new_tokens": new_tokens, "prompt_len": prompt_len, "seed": seed}
        ref_folder, rows = checkpoints[0][1], []
        reference = load_model(ref_folder, dtype, device)
        run_device = reference.get_input_embeddings().weight.device
        ref = profile(reference, seqlen, **settings)
        for name, folder in tqdm(checkpoints, desc="bench (paired with the dense model)", unit="model"):
            model = reference if folder == ref_folder else load_model(folder, dtype, device)
            m = ref if model is reference else profile(model, seqlen, **settings)
            row = {"name": name, "blocks": model.config.get_text_config().num_hidden_layers, "best_of": BEST_OF,
                   "threads": torch.get_num_threads()}
            for kind, tokens in (("prefill", batch * seqlen), ("decode", batch * new_tokens)):
                ratios, seconds = speedup_pairs(ref[kind], m[kind], run_device, repeats, warmup, seed)
                median, lo, hi = median_interval(ratios, seed)
                row |= {f"{kind}_pairs": len(ratios), f"{kind}_speedup": round(median, 4),
                        f"{kind}_ci": [round(lo, 4), round(hi, 4)],
                        f"{kind}_spread": round(spread(ratios, seed), 4),
                        f"{kind}_tokens_per_s": round(tokens / statistics.median(seconds), 2)}
            row |= {k: m[k] for k in ("parameters", "weight_bytes", "activation_bytes", "peak_memory_bytes",
                                      "peak_memory_kind", "flops_per_token")}
            row |= {"checkpoint_bytes": checkpoint_bytes(folder), "ideal_speedup": ref["flops_per_token"] /
                    m["flops_per_token"], "memory_ratio": round(m["peak_memory_bytes"] / ref["peak_memory_bytes"], 4),
                    "device": str(run_device), "dtype": dtype, "batch": batch, "seqlen": seqlen,
                    "new_tokens": new_tokens, "prompt_len": prompt_len, "repeats": repeats, "warmup": warmup,
                    "target_spread": TARGET_SPREAD, "more_pairs": MORE_PAIRS, "max_pairs": MAX_PAIRS_FACTOR * repeats}
            rows.append(row)
            if model is not reference:
                del model, m
                free_memory()
        return rows


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
