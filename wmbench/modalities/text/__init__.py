"""Text half of the bench: a faithful word tokenizer, an offline n-gram LM, and its corpus.

Frequency-skew (green-list) text watermarks bias a language model's next-word
distribution during generation, so the bench needs a model that runs with no
network: ``ngram.NgramLM`` (Kneser-Ney, numpy) trained by ``corpus.default_lm`` on
text that ships with Python and with this project. ``tokenize`` is shared by the
model, the marks and the detectors so that all of them count the same words.
"""
