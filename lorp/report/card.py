"""The model card (README.md) written beside a pruned checkpoint: what was removed, how it was chosen and measured."""

from lorp.io import write_text
from lorp.select.methods import method


def model_card(record: dict) -> str:
    """Markdown with YAML front matter, from the checkpoint's pruning.json record."""
    cal = record["calibration"]
    rls = record["rls"]
    rls_text = "undefined" if rls["rls"] is None else f"{rls['rls']:.4f}"
    clusters = " ".join("{" + ", ".join(map(str, m)) + "}" for m in record["clusters"]["members"])
    removed = ", ".join(map(str, record["removed"]))
    return f"""---
base_model: {record["source"]}
tags: [{", ".join(dict.fromkeys(["depth-pruning", "lorp", record["method"]]))}]
---
# {record["source"]} with {len(record["removed"])} of {record["num_blocks"]} blocks removed

- **Method:** {method(record["method"]).title}, budget {record["budget"]} (asked: {record["budget_asked"]})
- **Removed blocks:** {removed} (0-based, in the base model's order); {len(record["kept"])} blocks kept
- **Calibration:** {cal["n_samples"]} windows x {cal["seqlen"]} tokens of {cal["corpus"]} ({cal["split"]}), \
seed {cal["seed"]}
- **Block similarity:** RLS = {rls_text}, K = {rls["k"]} ({rls["k_source"].replace("_", " ")}); clusters {clusters}
- **Check:** the pruned model's logits equal the base model's with those blocks skipped \
(max |diff| = {record["max_abs_logit_diff_vs_skip"]:.2e} on a 32-token probe)
- **Made with:** the `lorp` command (torch {record["versions"]["torch"]}, \
transformers {record["versions"]["transformers"]}); every number that chose the blocks is in `pruning.json`.

Not fine-tuned after pruning. Measure perplexity and zero-shot accuracy before use: removing blocks can hurt badly
on some models (see the project's report).
"""


def write_card(folder, record: dict) -> None:
    write_text(folder / "README.md", model_card(record))
