"""Prefect flows: thin wiring of store, embeddings and heads (ingest, embed, index, retrain, and
one continual cycle of all of them), their deployments, schedules and event triggers.

The libraries work without Prefect; nothing here computes anything itself.
"""

import os

# Nothing leaves the machine unless asked: no usage analytics from a local Prefect server.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The temporary server `run` and `demo` start takes 8-15 s on 2 idle cores and over 20 s (Prefect's
# default limit) on a busy machine: wait up to 2 minutes before giving up.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
