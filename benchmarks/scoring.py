"""Extraction scores as the two upstream benchmarks compute them (see the corpus README).

Used by benchmarks/crossval.py, which the extraction tests and benchmark share.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

TOKEN = re.compile(r"\w+")


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float
    accuracy: float


def shingle_scores(pairs: list[tuple[str, str]]) -> Scores:
    """scrapinghub article-extraction-benchmark: 4-token shingles, per-page counts scaled to
    sum to 1, precision and recall averaged over pages, F1 from the averages."""
    precisions, recalls, exact = [], [], 0
    for predicted, truth in pairs:
        p_tokens, t_tokens = TOKEN.findall(predicted), TOKEN.findall(truth)
        exact += p_tokens == t_tokens
        p_sh, t_sh = _shingles(p_tokens), _shingles(t_tokens)
        tp = sum((p_sh & t_sh).values())
        fp = sum((p_sh - t_sh).values())
        fn = sum((t_sh - p_sh).values())
        total = tp + fp + fn
        if total == 0:  # both empty: a perfect page
            tp, fp, fn, total = 1, 0, 0, 1
        tp, fp, fn = tp / total, fp / total, fn / total
        precisions.append(tp / (tp + fp) if tp + fp else 0.0)
        recalls.append(tp / (tp + fn) if tp + fn else 0.0)
    precision = sum(precisions) / len(precisions)
    recall = sum(recalls) / len(recalls)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, exact / len(pairs))


def _shingles(tokens: list[str], n: int = 4) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1)) if tokens)


@dataclass(frozen=True)
class SnippetScores:
    kept: float  # share of must-keep snippets present
    dropped: float  # share of must-drop snippets absent
    f1: float


def snippet_scores(results: list[tuple[str, list[str], list[str]]]) -> SnippetScores:
    """trafilatura's evaluation: whitespace collapsed, case-sensitive substring matching."""
    tp = fn = fp = tn = 0
    for text, with_, without in results:
        flat = " ".join(text.split())
        for snippet in with_:
            if " ".join(snippet.split()) in flat:
                tp += 1
            else:
                fn += 1
        for snippet in without:
            if " ".join(snippet.split()) in flat:
                fp += 1
            else:
                tn += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return SnippetScores(tp / (tp + fn), tn / (tn + fp), f1)
