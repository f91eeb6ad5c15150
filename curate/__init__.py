"""curate: rules-driven dataset curation for LLM fine-tuning and pretraining corpora."""

__version__ = "0.1.0"
