"""Heads: detectors trained on stored embeddings, their evaluation, drift checks and the gate.

Not built yet: see the open issues on heads, evaluation and the promotion gate.
"""
