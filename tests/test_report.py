"""The report: rendered from a synthetic two-model artefact tree (6 and 8 blocks) laid out as the pipeline lays
it out, its HTML checked for hidden code, real images, headline numbers equal to the metrics files, conclusions
that follow the numbers, and (where a headless Chromium is installed) nothing wider than a 1280 px window."""

import base64
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from bs4 import BeautifulSoup
from matplotlib.figure import Figure

from lorp.io import read_json, write_json, write_npy, write_text
from lorp.report import figures, inputs
from lorp.report.render import render

pytestmark = pytest.mark.model  # builds or runs a model: not in make test-fast

REPO = Path(__file__).resolve().parents[1]
METHODS = ("lorp", "shortgpt", "streamline", "oneshot_ppl")
BASE_PPL = {"shortgpt": 100.0, "streamline": 120.0, "oneshot_ppl": 110.0}
BASE_ACC = {"shortgpt": 0.45, "streamline": 0.40, "oneshot_ppl": 0.43}
TASKS = ("arc_easy", "arc_challenge", "winogrande", "boolq", "openbookqa", "rte", "copa", "race", "piqa")
VERSIONS = {"python": "3.11.7", "torch": "2.13.0+cpu", "transformers": "5.23.0"}
MODELS = {"small": 6, "deep": 8}


def budgets(n: int) -> dict[str, int]:
    return {"p20": max(1, round(0.2 * n)), "p40": round(0.4 * n)}


def write_model(root: Path, key: str, n: int, lorp_ppl: float, seed_sd: float, lorp_acc: float, limit: int) -> None:
    """Every artefact of one model at its layout path, with LoRP at lorp_ppl / lorp_acc (budget-scaled) and every
    method's spread over calibration seeds seed_sd."""
    data, reports = root / "data" / key, root / "reports" / "results" / key
    distance = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    similarity = 0.9 ** distance
    off = similarity[np.triu_indices(n, 1)].mean()
    labels = [0] + [1] * (n // 2 - 1) + [2] * (n - n // 2)
    members = [[b for b in range(n) if labels[b] == k] for k in range(3)]
    rls = {"rls": -math.log2(off), "mean_off_diagonal": off, "k": 3, "k_source": "rls_policy", "num_blocks": n}
    write_npy(data / "similarity/S.npy", similarity.astype(np.float32))
    write_npy(data / "similarity/angular.npy", np.arccos(np.clip(similarity, -1, 1)) / np.pi)
    write_json(data / "similarity/timing.json", {"windows": 8, "tokens": 2048, "seconds": 3.5,
                                                 "tokens_per_second": 585})
    write_json(data / "rls/rls.json", rls)
    write_text(data / "rls/decay.csv", "distance,normalised_distance,mean_similarity\n" + "".join(
        f"{d},{d / (n - 1):.6f},{0.9 ** d}\n" for d in range(1, n)))
    write_json(data / "clusters.json", {"k": 3, "labels": labels, "members": members})
    write_json(data / "model_info.json", {"source": f"pypi:{key}", "kind": "pypi", "architecture": "LlamaForCausalLM",
                                          "num_blocks": n, "parameters": 1_000_000 * n, "dtype": "float32",
                                          "versions": VERSIONS})
    write_json(data / "calibration/info.json", {"corpus": "c4", "split": "validation", "documents": 100,
                                                "excluded_eval_documents": 3, "stream_tokens": 50000,
                                                "n_samples": 8, "seqlen": 32, "seed": 0, "bos": False})
    dense_ppl = 40.0
    ablation = [None] + [dense_ppl * (1 + 0.5 * b) for b in range(1, n - 1)] + [None]
    write_json(data / "importance/importance.json", {
        "samples": 2, "seqlen": 32, "protected": [0, n - 1], "dense_ppl": dense_ppl, "ablation_ppl": ablation,
        "seconds": {"oneshot_ppl": 2.0, "sleb": 5.0}, "sleb_order": [1, 2], "sleb_ppl": [45.0, 50.0]})
    plans, marginal, ppl, acc, bench, metrics = [], {}, {}, {}, {}, {}
    ppl["dense"] = {"wikitext2": 35.0, "ptb": 50.0, "c4": 35.0, "average": dense_ppl, "removed": 0}
    acc["dense"] = {**dict.fromkeys(TASKS, 0.5), "average": 0.5}
    bench["dense"] = bench_row("dense", n, 1.0, 1.0)
    metrics["dense"] = {"ppl": dense_ppl, "acc": 0.5, "params_m": float(n)}
    metrics["selection"] = {"rls": round(rls["rls"], 4), "k": 3}
    summary = {}
    for label, count in budgets(n).items():
        scale = 1 + count / n
        for i, method in enumerate(METHODS):
            name = f"{method}-{label}"
            removed = list(range(1 + i % (n - 1 - count), 1 + i % (n - 1 - count) + count))
            scores = ({"member_redundancy": [float("-inf")] + [0.9] * (n - 1),
                       "steps": [{"stage": 1 if s == 0 else 2, "cluster": labels[b], "block": b, "r": 0.9, "mu": None}
                                 for s, b in enumerate(removed)]} if method == "lorp" else {})
            plans.append({"name": name, "method": method, "budget": count, "num_blocks": n, "removed": removed,
                          "kept": [b for b in range(n) if b not in removed], "scores": scores, "label": label,
                          "budget_value": float(label[1:]) / 100})
            steps = [dense_ppl * 1.5 ** (s + 1) for s in range(count)]
            cost = [after - before for before, after in zip([dense_ppl, *steps[:-1]], steps, strict=True)]
            marginal[name] = {"order": removed, "dense_ppl": dense_ppl, "ppl": steps, "cost": cost, "seconds": 1.0}
            average = round((lorp_ppl if method == "lorp" else BASE_PPL[method]) * scale, 3)
            ppl[name] = {"wikitext2": average, "ptb": average, "c4": average, "average": average, "removed": count}
            accuracy = round((lorp_acc if method == "lorp" else BASE_ACC[method]) / scale, 4)
            acc[name] = {**dict.fromkeys(TASKS, accuracy), "average": accuracy}
            bench[name] = bench_row(name, n - count, 1 + count / n, 1 + count / n)
            values = [average, average + seed_sd, average - seed_sd]
            summary[name] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": 3, "values": values}
            metrics.setdefault(method, {})[label] = {
                "blocks": count, "ppl": average, "ppl_mean": round(summary[name]["mean"], 3),
                "ppl_std": round(summary[name]["std"], 3), "acc": accuracy, "prefill_x": round(1 + count / n, 3),
                "decode_x": round(1.1 + count / n, 3), "ideal_x": round(n / (n - count), 3)}
    write_json(data / "plans.json", plans)
    write_json(data / "importance/marginal.json", {"samples": 2, "seqlen": 32, "dense_ppl": dense_ppl,
                                                   "plans": marginal})
    run = {"seconds": 12.5, "dtype": "float32", "device": "cpu", "versions": VERSIONS}
    write_json(reports / "ppl.json", {"ppl": ppl, "eval_windows": {d: {"windows": 4, "seqlen": 32}
                                                                   for d in ("wikitext2", "ptb", "c4")}, **run})
    write_json(reports / "zeroshot.json", {
        "accuracy": acc, "stderr": {m: dict.fromkeys(TASKS, 0.15) for m in acc},
        "skipped": {"hellaswag": "not in the mirror"}, "limit": limit,
        "examples": {**dict.fromkeys(TASKS, limit), "hellaswag": None}, **run})
    write_json(reports / "bench.json", {"models": bench, "selection_cost": {}, "importance_speedup": {}})
    write_json(reports / "study.json", study(key, n, plans, ppl, summary))
    write_json(root / "reports/metrics" / f"{key}.json", metrics)


def bench_row(name: str, blocks: int, prefill: float, decode: float) -> dict:
    return {"name": name, "blocks": blocks, "parameters": 1_000_000 * blocks, "checkpoint_bytes": 4_000_000 * blocks,
            "peak_memory_bytes": 2**30 + 10_000_000 * blocks, "peak_memory_kind": "cpu_rss",
            "prefill_tokens_per_s": 300.0 * prefill, "decode_tokens_per_s": 5.0 * decode,
            "prefill_speedup": prefill, "decode_speedup": decode, "ideal_speedup": prefill * 1.02,
            "prefill_spread": 0.1, "decode_spread": 0.2, "flops_per_token": 1e8, "device": "cpu", "dtype": "float32",
            "batch": 1, "seqlen": 32, "new_tokens": 4, "prompt_len": 4, "repeats": 3, "warmup": 1}


def study(key: str, n: int, plans: list[dict], ppl: dict, summary: dict) -> dict:
    lorp = {p["name"]: p["removed"] for p in plans if p["method"] == "lorp"}
    draws = [{"kind": kind, "corpus": corpus, "n_samples": size, "seed": seed, "rls": 0.5 + 0.01 * i, "k": 3,
              "labels": [0] * n, "plans": lorp, "jaccard": dict.fromkeys(lorp, 1.0 if i == 0 else 0.5),
              "ppl": {name: ppl[name] for name in lorp}}
             for i, (kind, corpus, size, seed) in enumerate([("default", "c4", 8, 0), ("seed", "c4", 8, 1),
                                                             ("size", "c4", 4, 0), ("corpus", "ptb", 8, 0)])]
    k_sweep = [{"k": k, "rls_k": k == 3, "label": label, "blocks": lorp[f"lorp-{label}"],
                "ppl": {"average": ppl[f"lorp-{label}"]["average"] * (1 + abs(k - 3) / 4)}}
               for label in budgets(n) for k in (2, 3, 4)]
    return {"model": key, "num_blocks": n, "eval": {"datasets": ["wikitext2", "ptb", "c4"], "windows": 4, "seqlen": 32},
            "budgets": budgets(n), "draws": draws, "seed_summary": summary, "k_sweep": k_sweep, "evaluated": 9,
            "reused": 4, "seconds": {"calibration": 3.0, "evaluation": 20.0, "total": 23.0}}


def write_tree(root: Path, lorp_ppl: float, seed_sd: float, lorp_acc: float, limit: int) -> Path:
    for key, n in MODELS.items():
        write_model(root, key, n, lorp_ppl, seed_sd, lorp_acc, limit)
    write_json(root / "data/sources.json", {"kind": "mirror", "folder": "/shared/data", "manifest_sha256": "ab12"})
    write_text(root / "params.yaml", "models: {small: {}, deep: {}}\n")
    return root


def render_tree(root: Path, models: list[str]) -> BeautifulSoup:
    html = render(REPO / "notebooks/report.ipynb", root / "reports/report.ipynb", {"models": models, "root": str(root)})
    return BeautifulSoup(html.read_text(), "html.parser")


@pytest.fixture(scope="module")
def clear(tmp_path_factory) -> tuple[Path, BeautifulSoup]:
    """LoRP far ahead of every baseline, by much more than the seed spread and the zero-shot standard error."""
    root = write_tree(tmp_path_factory.mktemp("clear"), lorp_ppl=50.0, seed_sd=2.0, lorp_acc=0.6, limit=200)
    return root, render_tree(root, list(MODELS))


def findings(soup: BeautifulSoup) -> list[str]:
    return [li.get_text() for ul in soup.select("ul.claims") for li in ul.select("li")]


def test_html_hides_code_and_keeps_it_in_the_notebook(clear):
    root, soup = clear
    assert not soup.select(".jp-CodeCell .jp-InputArea, .jp-CodeCell .jp-Editor, .input_area")
    assert "inputs.load(" not in soup.get_text()
    executed = read_json(root / "reports/report.ipynb")
    assert any("inputs.load(" in "".join(c["source"]) for c in executed["cells"] if c["cell_type"] == "code")


def test_every_figure_is_a_captioned_png(clear):
    _, soup = clear
    images = soup.select("img")
    assert len(images) >= 2 * 6 + 2  # per model: S, importance, marginal, PPL-budget, K, draws; then 2 shared
    for img in images:
        data = base64.b64decode(img["src"].removeprefix("data:image/png;base64,"))
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width > 300 and height > 150
        assert img.find_parent("figure").figcaption.get_text().startswith("Figure ")


def shown(cell: str) -> float | None:
    text = cell.replace(",", "").strip()
    return None if text == "–" else float(text)


def close_enough(text: str, value: float) -> bool:
    """text shows value at the precision it is printed with."""
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    tolerance = 0.5 * 10**-decimals if "e" not in text else 5e-3 * abs(value)
    return abs(shown(text) - value) <= tolerance + 1e-12


def test_headline_numbers_equal_the_metrics_files(clear):
    root, soup = clear
    columns = {"avg PPL ↓": "ppl", "seed mean": "ppl_mean", "seed sd": "ppl_std", "zero-shot acc ↑": "acc",
               "prefill ×": "prefill_x", "decode ×": "decode_x", "ideal ×": "ideal_x", "blocks removed": "blocks"}
    for key in MODELS:
        metrics = read_json(root / f"reports/metrics/{key}.json")
        table = soup.find("table", id=f"headline-{key}")
        header = [th.get_text() for th in table.thead.find_all("tr")[0].find_all("th")]
        checked = 0
        for tr in table.tbody.find_all("tr"):
            cells = [c.get_text() for c in tr.find_all(["th", "td"])]
            plan = cells[0]
            method, _, label = plan.rpartition("-")
            row = {"blocks": 0, **metrics["dense"]} if plan == "dense" else metrics[method][label]
            for name, field in columns.items():
                text = cells[header.index(name)]
                if field in row:
                    assert close_enough(text, row[field]), (key, plan, name, text, row[field])
                    checked += 1
                else:
                    assert text == "–", (key, plan, name, text)
        assert checked == 3 + len(METHODS) * 2 * len(columns)  # dense: blocks, PPL, acc


def test_conclusions_follow_the_numbers(clear, tmp_path):
    """Same tree, LoRP's lead cut to within the seed spread and the zero-shot error (rendered for one model)."""
    _, soup = clear
    root = write_tree(tmp_path, lorp_ppl=99.0, seed_sd=2.0, lorp_acc=0.46, limit=10)
    close = render_tree(root, ["small"])
    clear_ppl = [s for s in findings(soup) if "lowest average perplexity" in s]
    close_ppl = [s for s in findings(close) if "lowest average perplexity" in s]
    assert len(clear_ppl) == 2 * len(MODELS) and len(close_ppl) == 2  # two budgets per model
    assert all(s.endswith(": distinguishable.") and "lorp gives" in s for s in clear_ppl)
    assert all(s.endswith("not distinguishable.") for s in close_ppl)
    assert "On average perplexity, LoRP is best (or tied best) at 4 of 4 model-budget pairs; the winner's margin " \
           "over the runner-up is distinguishable from noise at 4 of them." in findings(soup)
    close_acc = [s for s in findings(close) if "scores highest" in s]
    assert len(close_acc) == 2 and all("at most 10 per task" in s and "not distinguishable" in s for s in close_acc)
    verdicts = close.select("table")[0].get_text()
    assert "yes" not in verdicts and "no" in verdicts


def test_sections_cover_every_model(clear):
    _, soup = clear
    headings = [h.get_text() for h in soup.select("h2")]
    assert [h for h in headings if h.startswith("Model ")] == [f"Model {k} (pypi:{k})" for k in MODELS]
    for heading in ("Findings", "Setup", "Across models", "Against the paper", "Provenance"):
        assert heading in headings
    assert "Quoted from the paper" in soup.get_text()
    assert "manifest_sha256: ab12" in soup.get_text()


# --- in a real browser -------------------------------------------------------------------------------------------

BROWSERS = ("chromium-headless-shell", "chromium", "google-chrome", "chrome")
MEASURE = """<script>
window.addEventListener('load', () => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > width + 1 || e.scrollWidth > e.clientWidth + 1)
    .filter(e => getComputedStyle(e).display !== 'inline')
    .map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)} ${e.scrollWidth}`);
  document.body.setAttribute('data-width', width);
  document.body.setAttribute('data-wide', JSON.stringify(wide));
});
</script>"""


def test_nothing_is_wider_than_a_1280px_window(clear, tmp_path):
    browser = next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no headless Chromium: `apt-get install chromium-headless-shell` (Debian) to run this check")
    root, _ = clear
    page = tmp_path / "measured.html"
    page.write_text((root / "reports/report.html").read_text().replace("</body>", MEASURE + "</body>"))
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                           "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=True)
    body = BeautifulSoup(done.stdout, "html.parser").body
    assert 1200 < int(body["data-width"]) <= 1280  # the window less its scroll bar
    assert json.loads(body["data-wide"]) == []



def test_export_figures_writes_each_figure_of_the_rendered_report_as_png_and_replaces_the_folder(clear, tmp_path):
    from lorp.report.render import ReportError, export_figures

    root, soup = clear
    html = (root / "reports/report.html").read_text()  # as nbconvert wrote it, attributes reordered
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "stale.png").write_bytes(b"old")
    written = export_figures(html, tmp_path / "figures")
    names = [f"figure-{n:02d}.png" for n in range(1, len(soup.select("figure img")) + 1)]
    assert len(names) >= 14 and [p.name for p in written] == names
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == names
    assert all(p.read_bytes().startswith(base64.b64decode("iVBORw0KGgo=")) for p in written)
    first_two = html[:html.index("<figcaption><b>Figure 3.</b>")]
    with pytest.raises(ReportError, match="2 images for 3 figure captions"):  # an image the pattern misses
        export_figures(first_two + "<figure><figcaption><b>Figure 3.</b> drawn as SVG</figcaption>", tmp_path / "x")


def test_every_figure_text_is_at_least_8px_at_1280px(clear):
    """The smallest text of each figure, as the report shows it at a 1280 px window (wider figures are scaled
    down), is at least figures.MIN_TEXT_PX: catches a figure made too wide or a font made too small."""
    root, _ = clear
    runs = [inputs.load(root, key) for key in MODELS]
    built = {"decay": figures.decay_curves(runs), "speedups": figures.speedups(runs)}
    for run in runs:
        key = run["key"]
        built |= {f"S {key}": figures.similarity_heatmap(run["similarity"], run["clusters"]["labels"], key),
                  f"ppl {key}": figures.ppl_vs_budget(run["metrics"]),
                  f"k {key}": figures.k_ablation(run["study"]["k_sweep"]),
                  f"draws {key}": figures.calibration_draws(run["study"], list(run["study"]["budgets"]))}
        if run["importance"] is not None:
            built[f"importance {key}"] = figures.block_importance(run["importance"], run["clusters"], run["plans"])
        if run["marginal"] is not None:
            built[f"marginal {key}"] = figures.marginal_costs(run["marginal"], run["plans"], len(run["similarity"]))
    small = {name: round(figures.smallest_text_px(fig), 1) for name, fig in built.items()
             if figures.smallest_text_px(fig) < figures.MIN_TEXT_PX}
    assert small == {}
    wide = Figure(figsize=(20, 3))  # the check can fail: an 8 pt label on a 20-inch figure shrinks below 8 px
    wide.subplots().set_title("x", fontsize=8)
    assert figures.smallest_text_px(wide) < figures.MIN_TEXT_PX


def test_zeroshot_caption_says_what_an_example_weighs_and_what_ran():
    from lorp.report.tables import zeroshot_caption

    shared = {"limit": 12, "tokens": {"run": 3194, "per_choice": 5643, "shared_context": True}}
    assert zeroshot_caption(shared) == (
        "Zero-shot accuracy per task (higher is better), 12 examples per task: one example moves a task's accuracy "
        "by 0.08. Each question's context ran once for all its choices: 3,194 model input tokens per plan where "
        "lm-eval's per-choice requests take 5,643.")
    alone = {"limit": None, "tokens": {"run": 5643, "per_choice": 5643, "shared_context": False}}
    assert zeroshot_caption(alone).endswith("(higher is better). Each choice ran with its own copy of the "
                                            "question's context (lm-eval's per-choice requests).")
    assert zeroshot_caption({"limit": 10}).endswith("moves a task's accuracy by 0.10.")
