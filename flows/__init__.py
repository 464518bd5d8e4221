"""Prefect flows: thin wiring of store, embeddings and heads (ingest, embed, retrain, continual).

Not built yet: the orchestration issue adds them. The libraries work without Prefect.
"""
