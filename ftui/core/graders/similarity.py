"""text_similarity's metrics, computed by the libraries made for them: rapidfuzz (fuzzy_match), nltk (bleu, gleu,
meteor), rouge-score (rouge_1 … rouge_5, rouge_l). Words are split on white space (nltk's punkt tokenizer is a
download; nothing is downloaded here). METEOR runs without WordNet's synonyms for the same reason: exact and stem
matches only. BLEU is sentence BLEU with smoothing (method 1), so a short answer with no 4-gram in common scores
above zero. ``cosine`` needs OpenAI's embeddings and is refused by name."""

from __future__ import annotations

import functools

METRICS = ("fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l")
REFUSED = {"cosine": "cosine needs OpenAI's embeddings (text-embedding-3-large; OpenAI offered it for evals only) and "
                     "the local backend has none: use fuzzy_match, bleu, gleu, meteor or rouge_*"}


class _NoWordNet:
    """METEOR's synonym stage with nothing in it."""

    def synsets(self, *args, **kwargs) -> list:
        return []


@functools.cache
def _rouge(metric: str):
    from rouge_score import rouge_scorer

    key = "rougeL" if metric == "rouge_l" else f"rouge{metric[-1]}"
    return key, rouge_scorer.RougeScorer([key])


def score(metric: str, text: str, reference: str) -> float:
    if metric == "fuzzy_match":
        from rapidfuzz import fuzz, utils

        return fuzz.WRatio(text, reference, processor=utils.default_process) / 100.0
    hyp, ref = text.split(), reference.split()
    if metric == "bleu":
        import warnings

        from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(sentence_bleu([ref], hyp, smoothing_function=SmoothingFunction().method1))
    if metric == "gleu":
        from nltk.translate.gleu_score import sentence_gleu

        return float(sentence_gleu([ref], hyp))
    if metric == "meteor":
        from nltk.translate.meteor_score import meteor_score

        return float(meteor_score([ref], hyp, wordnet=_NoWordNet()))
    key, scorer = _rouge(metric)
    return float(scorer.score(reference, text)[key].fmeasure)
