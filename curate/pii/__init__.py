"""PII detection and redaction on Presidio, offline and batched (see curate.stages.pii)."""
