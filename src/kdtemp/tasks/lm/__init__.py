"""Causal language models: instruction data (Dolly, your own JSONL), Hugging Face causal LMs,
token-level distillation and generation-based ROUGE-L (Transformers is imported only when used)."""

from .task import CausalLanguageModeling  # noqa: F401  (registers causal_lm)
