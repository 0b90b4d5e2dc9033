"""Tests for rnnjax.data.synthetic: determinism, balance, where the cue sits and what decides the label."""

import numpy as np
import pytest

from rnnjax.data import synthetic
from rnnjax.data import text


def _parse(words: list[str], distance: int) -> tuple[bool, bool]:
    """Reads (cue is positive, negated) back from a tokenized review, independently of the generator."""
    assert words[-2 - distance] == synthetic.CUE_WORD
    verdict = words[-1 - distance]
    assert verdict in synthetic.POSITIVE_CUES + synthetic.NEGATIVE_CUES and words.count(verdict) == 1
    return verdict in synthetic.POSITIVE_CUES, words[3] == synthetic.NEGATION_WORD


def test_same_seed_same_reviews_other_seed_other_reviews():
    a_texts, a_labels = synthetic.generate_reviews(50, seed=3)
    b_texts, b_labels = synthetic.generate_reviews(50, seed=3)
    c_texts, _ = synthetic.generate_reviews(50, seed=4)
    assert a_texts == b_texts and np.array_equal(a_labels, b_labels)
    assert a_texts != c_texts


@pytest.mark.parametrize("distance", [0, 7, 40])
def test_label_is_cue_polarity_flipped_by_negation(distance):
    texts, labels = synthetic.generate_reviews(400, seed=0, distance=distance)
    words = text.tokenize(texts)  # the same pipeline as real reviews
    parsed = np.array([_parse(ws, distance) for ws in words])
    np.testing.assert_array_equal(labels, parsed[:, 0] ^ parsed[:, 1])
    assert all(ws.count(synthetic.CUE_WORD) == 1 and ws.count(synthetic.NEGATION_WORD) <= 1 for ws in words)
    assert all(60 <= len(ws) <= 80 for ws in words)


def test_labels_balanced_and_negation_independent_of_label():
    texts, labels = synthetic.generate_reviews(4001, seed=1, negation_rate=0.25)
    assert labels.dtype == np.int32 and abs(int(labels.sum()) - 2000) <= 1
    negated = np.array(["not" in t.split()[:5] for t in texts])
    assert 0.22 < negated.mean() < 0.28
    assert abs(negated[labels == 1].mean() - negated[labels == 0].mean()) < 0.04


def test_distractors_carry_no_label_information():
    distance, sentiment = 10, synthetic.POSITIVE_WORDS + synthetic.NEGATIVE_WORDS
    texts, labels = synthetic.generate_reviews(4000, seed=2, distance=distance, distractor_rate=0.3)
    net, last_positive, rate = [], [], []
    for ws in text.tokenize(texts):
        del ws[-1 - distance]  # the cue's verdict
        net.append(
            sum(w in synthetic.POSITIVE_WORDS for w in ws) - sum(w in synthetic.NEGATIVE_WORDS for w in ws)
        )
        after_cue = [w for w in ws[-distance:] if w in sentiment]
        last_positive.append(after_cue[-1] in synthetic.POSITIVE_WORDS if after_cue else np.nan)
        rate.append(np.mean([w in sentiment for w in ws]))
    net, last_positive = np.array(net), np.array(last_positive)
    assert 0.2 < np.mean(rate) < 0.3
    gap = net[labels == 1].mean() - net[labels == 0].mean()
    assert abs(gap) < 4 * net.std() * np.sqrt(2 / 2000), gap  # within noise: the counts say nothing
    # Nor does the last sentiment word before the end (a model cannot read the label off it).
    assert abs(np.nanmean(last_positive[labels == 1]) - np.nanmean(last_positive[labels == 0])) < 0.06


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"distance": 51}, "distance=51"),
        ({"distance": -1}, "distance=-1"),
        ({"negation_rate": 1.5}, "negation_rate"),
        ({"num_examples": -1}, "num_examples"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthetic.generate_reviews(**{"num_examples": 3, "seed": 0, **kwargs})


def test_longest_distance_fits():
    texts, _ = synthetic.generate_reviews(20, seed=0, distance=50)
    assert all(_parse(ws, 50) for ws in text.tokenize(texts))
