"""README.md's generated paragraphs on what the models and the run cost: efficiency (bench.json, and the bench with a
competing process when `make bench-loaded` wrote it), each stage's time and FLOPs, each stage's peak memory."""

from pathlib import Path

from lorp.io import read_json
from lorp.model.resources import PEAKS
from lorp.report.formats import MISSING, markdown_table, seconds, size, value_range
from lorp.report.html import bench_method
from lorp.report.inputs import PATHS
from lorp.report.provenance import stage_seconds

COMPUTE = "reports/bench/compute.json"
LOADED = "reports/bench/loaded/{key}.json"  # make bench-loaded: the bench with a busy process competing
TARGET_BYTES = 2e9  # the study issue's memory target for evaluate, 2 GB


def _widest(benches: list[dict]) -> float:
    """The largest relative half-width (spread) of any speed-up in these bench records."""
    return max(max(m["prefill_spread"], m["decode_spread"]) for b in benches for m in b["models"].values())


def efficiency_block(runs: list[dict], loaded: list[dict] = ()) -> str:
    """Size, memory, throughput and the ideal (FLOP) speed-up per distinct architecture (bench.json); `loaded`:
    the same bench measured with a process competing for the CPU (`make bench-loaded`), when there is one."""
    first = next(iter(runs[0]["bench"]["models"].values()))
    parts, measured = [], []
    for run in runs:
        models = run["bench"]["models"]
        dense = models["dense"]
        pruned = sorted({m["measured_as"] for name, m in models.items() if name != "dense"},
                        key=lambda name: -models[name]["blocks"])
        one = models[pruned[0]]  # the blocks' FLOPs per token, from the FLOPs a removed block saves
        per_block = (dense["flops_per_token"] - one["flops_per_token"]) / (dense["blocks"] - one["blocks"])
        outside = 1 - dense["blocks"] * per_block / dense["flops_per_token"]
        kind = dense["peak_memory_kind"]
        parts.append(
            f"{run['key']} dense {dense['parameters'] / 1e6:.1f} M parameters, {size(dense['checkpoint_bytes'])}, "
            + ("peak RSS" if kind == "cpu_rss" else "peak memory (weights + activations)" if kind.startswith("weights")
               else f"peak memory ({kind})") + f" {size(dense['peak_memory_bytes'])}, "
            f"prefill {dense['prefill_tokens_per_s']:.0f} tokens/s, decode {dense['decode_tokens_per_s']:.1f} "
            "tokens/s; " + ", ".join(f"{models[name]['blocks']} blocks {models[name]['parameters'] / 1e6:.1f} M "
                                     f"(ideal ×{models[name]['ideal_speedup']:.2f})" for name in pruned)
            + f"; what runs outside the blocks (the LM head) is {100 * outside:.0f} % of the dense FLOPs per token, "
            "untouched by depth pruning")
        measured.append(f"{run['key']} " + ", ".join(
            f"{k} ×{value_range([models[n][f'{k}_speedup'] for n in pruned], 2)}" for k in ("prefill", "decode")))
    spread = _widest([run["bench"] for run in runs])
    paired, how = "prefill_ci" in first, bench_method(first)
    noise = (f"; every 95 % interval lies within ±{100 * spread:.1f} % of its median" if paired else
             f"; the spread of the repeats, (max − min) / median, reaches {100 * spread:.0f} %")
    noise += (f", and within ±{100 * _widest(loaded):.1f} % with a busy process competing for the CPU (`make "
              f"bench-loaded`, `{LOADED.format(key='<model>')}`)" if loaded else "")
    return ("**Efficiency** (`reports/results/<model>/bench.json`: one prefill of {batch} × {seqlen} tokens, "
            "{new_tokens} decode steps after a {prompt_len}-token prompt, ".format(**first) + how
            + ", each distinct architecture timed once; ideal = ratio of FLOPs per token): "
            + ". ".join(parts) + ". Measured speed-ups: " + "; ".join(measured) + noise + ".")


def cost_block(root: str | Path, runs: list[dict]) -> str:
    """The stages' own timings (zero-shot's too, whose work lorp.evaluate.cost leaves out); with
    reports/bench/compute.json, also their FLOPs, GFLOP/s and the floor at the matmul rate."""
    took = {run["key"]: stage_seconds(run) for run in runs}
    compute = read_json(Path(root) / COMPUTE)["models"] if (Path(root) / COMPUTE).exists() else {}
    counted = {(key, stage): got for key in took for stage, got in compute.get(key, {}).get("stages", {}).items()}
    columns = ("TFLOP", "took", "GFLOP/s") if compute else ("took",)

    def cells(key: str, stage: str) -> list[str]:
        got, shown = counted.get((key, stage)), seconds(took[key][stage]) if took[key][stage] is not None else MISSING
        return ([f"{got['flops'] / 1e12:.3g}", shown, f"{got['achieved_gflops']:.0f}"] if got else
                [MISSING, shown, MISSING]) if compute else [shown]

    table = markdown_table(["stage", *(f"{key} {c}" for key in took for c in columns)],
                           [[stage, *(c for key in took for c in cells(key, stage))] for stage in took[runs[0]["key"]]])
    if not compute:
        total = sum(s for per in took.values() for s in per.values() if s is not None)
        return (f"{table}\n\nTogether {seconds(total)} by the records' own timings. `{COMPUTE}` is not committed, so "
                "this README quotes no FLOP count: `make bench` writes it (per model and stage `flops`, `seconds`, "
                "`achieved_gflops` and `floor_s`, the FLOPs at the machine's float32 matmul rate), and `make readme` "
                "then adds them to this table.")
    flops, spent = (sum(g[f] for g in counted.values()) for f in ("flops", "seconds"))
    stale = [f"{k} {s}" for (k, s), g in counted.items() if abs(g["seconds"] - (took[k].get(s) or 0)) > 0.5]
    return (f"{table}\n\n{flops / 1e12:.0f} TFLOP in {seconds(spent)}, about {flops / spent / 1e9:.0f} GFLOP/s; the "
            "fastest float32 2048³ matmul ran at " + ", ".join(f"{m['matmul_gflops']:.1f}" for m in compute.values())
            + f" GFLOP/s, so at that rate these stages need no less than "
            f"{seconds(sum(g['floor_s'] for g in counted.values()))} (`floor_s`), before the norms, softmax and "
            "activations the count leaves out; zero-shot is not counted."
            + (f" `{COMPUTE}` timed another run than the records ({', '.join(stale)}): rerun `make bench`."
               if stale else ""))


# stage -> the record (lorp.report.inputs) that keeps its peak RSS: the preflight's list, resources.PEAKS
PEAK_RECORDS = {stage: name for stage, pattern in PEAKS for name, path in PATHS.items() if path == pattern}


def memory_block(runs: list[dict]) -> str:
    """Every stage's recorded peak resident memory (the preflight quotes the largest), and evaluate's against the
    2 GB target of the study issue, beside the largest model's weights."""
    peak = {(run["key"], stage): (run.get(record) or {}).get("peak_rss_mib") for run in runs
            for stage, record in PEAK_RECORDS.items()}
    rows = [[stage] + [size(peak[run["key"], stage] * 2**20) if peak[run["key"], stage] else MISSING
                       for run in runs] for stage in PEAK_RECORDS]
    largest = {run["key"]: max((s for s in PEAK_RECORDS if peak[run["key"], s]), key=lambda s: peak[run["key"], s])
               for run in runs}
    evaluate = {run["key"]: peak[run["key"], "evaluate"] * 2**20 for run in runs}
    top = max(runs, key=lambda run: evaluate[run["key"]])
    return (markdown_table(["stage"] + [f"{run['key']} peak RSS" for run in runs], rows) + "\n\n"
            + "Each record's `peak_rss_mib`; the largest, which the preflight quotes as the next run's need, is "
            + ", ".join(f"{stage}'s for {key}" for key, stage in largest.items()) + ". `evaluate`: "
            + ", ".join(f"{key} {size(value)}" for key, value in evaluate.items())
            + f", {'under' if max(evaluate.values()) < TARGET_BYTES else 'over'} the 2 GB target; {top['key']}'s "
            f"{top['ppl']['dtype']} checkpoint alone is {size(top['bench']['models']['dense']['checkpoint_bytes'])} "
            "(`bench.json`).")
