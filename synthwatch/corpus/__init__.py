"""The proxy corpus: real photo crops and fakes from a zoo of small autoencoder generators.

A proxy to exercise the pipeline and compare settings; its numbers say nothing about
detecting real generators such as FLUX or Midjourney.
"""

from synthwatch.corpus.build import SIZES, CorpusSummary, build_corpus

__all__ = ["SIZES", "CorpusSummary", "build_corpus"]
