"""The LoRP paper's own headline numbers (arXiv 2605.27786), quoted as the method page (sec. 4 and 8) lists them,
so the report can set this run's numbers beside them. Quoted text, not measurements: perplexities keep their
printed form (">= 2000" is a bound, not a value)."""

SOURCE = "Yun et al., LoRP, arXiv 2605.27786 (2026), as quoted in docs/lorp-method.md sec. 4 and 8"
METHODS = ("shortgpt", "streamline", "lorp")

# Average PPL over WikiText-2 / C4 / PTB and average zero-shot accuracy (%) over 9 tasks, per method.
RESULTS = [
    {"model": "Llama-3.1-8B", "removed": 7, "blocks": 32, "rls": 1.149,
     "ppl": ("67.21", ">= 2000", "41.95"), "acc": (57.10, 42.59, 57.21)},
    {"model": "OLMo-3-7B", "removed": 7, "blocks": 32, "rls": 0.941,
     "ppl": ("30.02", "30.02", "24.82"), "acc": (58.73, 58.73, 60.38)},
    {"model": "Qwen3-8B", "removed": 7, "blocks": 36, "rls": 0.685,
     "ppl": ("262.67", "229.11", "27.92"), "acc": (51.50, 54.07, 56.65)},
    {"model": "Qwen3-14B", "removed": 11, "blocks": 40, "rls": 0.644,
     "ppl": ("276.50", ">= 2000", "37.44"), "acc": (50.53, 46.51, 52.84)},
    {"model": "Mistral-Nemo-12B", "removed": 11, "blocks": 40, "rls": 0.926,
     "ppl": ("357.93", "357.93", "50.86"), "acc": (54.49, 54.49, 55.08)},
]

PARAMETERS = (7e9, 14e9)  # the smallest and largest model of the paper
PROTOCOL = ("7-14 B parameters, 32-40 blocks; calibration 128 x 2048 tokens of C4; perplexity over the full test "
            "sets in 2048-token windows; every zero-shot example; bf16 on GPUs")
EFFICIENCY = "up to 1.56 x speed-up and 32.8 % less peak memory (Qwen3-14B, 15 of 40 blocks removed)"
