"""Prefect flows: thin wiring of store, embeddings and heads (ingest, embed, index, retrain, and
one continual cycle of all of them), their deployments, schedules and event triggers.

The libraries work without Prefect; nothing here computes anything itself.
"""

import os

# Nothing leaves the machine unless asked: no usage analytics from a local Prefect server.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
