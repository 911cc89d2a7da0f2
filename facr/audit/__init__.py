"""Interventional audits of faithfulness: metrics on the latent, statistics, reports."""

# Faces the rationale audit regenerates text for when no --limit is given: each costs K + 1
# generations per decoding mode. Here (not in rationale.py) so the CLI can name it without torch.
RATIONALE_DEFAULT_LIMIT = 16
# Rationales (or frozen-LLM queries) per generate call when the audit's options name none: one value for
# the rationale audit, the frozen-LLM auditor and `facr audit --generate-batch-size`.
GENERATE_BATCH_SIZE = 64
