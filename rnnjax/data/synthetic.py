"""A synthetic long-range sentiment dataset, generated from a seed: reviews whose label needs memory.

Each review is a string of words (so it goes through the same text pipeline as IMDB):

* It opens with "honestly i did agree with the critics" or, in a ``negation_rate`` fraction of reviews,
  "honestly i did not agree with the critics": the negation sits at the very start, far from the end.
* The cue "overall <verdict>" is followed by exactly ``distance`` words; the verdict is a positive
  (``POSITIVE_CUES``) or negative (``NEGATIVE_CUES``) word that appears nowhere else.
* Every other word is neutral filler ("the plot was ...") or, with probability ``distractor_rate``, a
  distractor sentiment word ("great", "awful", ...), positive or negative with probability 1/2 each,
  independently of the label: distractors carry no label information, before or after the cue.

The label is the cue's polarity, flipped by the negation; labels are balanced exactly (half 0, half 1) and the
negation is drawn independently of the label. A classifier that reads the final state must carry the verdict
across ``distance`` steps and the negation across the whole review, through the distractors: the cue alone
predicts the label in ``1 - negation_rate`` of the reviews, the cue with the negation in all of them. Verdicts
are not distractor words because then the cue is told apart only by the word before it, a conjunction that
LSTM and GRU models with Keras' initialisation did not learn at all in 30 epochs (SimpleRNN did in part).
Splitting into train and test, the vocabulary and padding live in ``rnnjax.data.datasets``.
"""

import numpy as np

POSITIVE_WORDS = ("great", "excellent", "wonderful", "brilliant", "superb", "moving", "lovely", "charming")
NEGATIVE_WORDS = ("awful", "terrible", "boring", "dreadful", "dull", "poor", "weak", "clumsy")
POSITIVE_CUES = ("masterpiece", "gem", "triumph", "treat")
NEGATIVE_CUES = ("disaster", "mess", "flop", "letdown")
FILLER_WORDS = tuple(
    """the a this that movie film plot story actor actress cast scene scenes director camera music score
    script ending character characters dialogue was is were and with of in it some very quite felt seemed
    looked rather my friend watched saw during second hour long again""".split()  # noqa: SIM905
)
CUE_WORD = "overall"
NEGATION_WORD = "not"
_OPENING = ("honestly", "i", "did", "agree", "with", "the", "critics")


def generate_reviews(
    num_examples: int,
    *,
    seed: int,
    length: int = 80,
    distance: int = 10,
    negation_rate: float = 0.25,
    distractor_rate: float = 0.15,
) -> tuple[list[str], np.ndarray]:
    """Generates reviews whose label is set by a cue ``distance`` words before the end (see the module doc).

    Args:
      num_examples: N, the number of reviews.
      seed: the generator's seed; equal arguments give equal reviews.
      length: the longest review in words; lengths are uniform in ``[length - length // 4, length]``.
      distance: words between the cue's verdict and the end of the review (0: the verdict is the last word).
      negation_rate: fraction of reviews with the negation that flips the cue.
      distractor_rate: probability that a filler position holds a distractor sentiment word.

    Returns:
      ``(texts, labels)``: N strings and ``[N] int32`` labels (0 negative, 1 positive).

    Raises:
      ValueError: if the cue does not fit after the opening, or a rate is outside [0, 1].
    """
    shortest = length - length // 4
    if num_examples < 0:
        raise ValueError(f"num_examples={num_examples} must be >= 0")
    if not 0 <= distance <= shortest - len(_OPENING) - 3:
        longest = shortest - len(_OPENING) - 3
        raise ValueError(
            f"distance={distance} does not fit reviews of {shortest}+ words: use 0..{longest} or raise length"
        )
    for name, rate in (("negation_rate", negation_rate), ("distractor_rate", distractor_rate)):
        if not 0 <= rate <= 1:
            raise ValueError(f"{name}={rate} must be in [0, 1]")
    rng = np.random.default_rng(seed)
    vocab = FILLER_WORDS + POSITIVE_WORDS + NEGATIVE_WORDS  # as many positive as negative sentiment words
    num_filler, num_positive = len(FILLER_WORDS), len(POSITIVE_WORDS)
    labels = rng.permutation(np.arange(num_examples) % 2).astype(np.int32)
    negated = rng.random(num_examples) < negation_rate
    texts = []
    for label, negate in zip(labels, negated):
        n = int(rng.integers(shortest, length + 1))
        sentiment = num_filler + rng.integers(
            2 * num_positive, size=n
        )  # either polarity with probability 1/2
        ids = np.where(rng.random(n) < distractor_rate, sentiment, rng.integers(num_filler, size=n))
        words = [vocab[i] for i in ids]
        opening = [*_OPENING[:3], NEGATION_WORD, *_OPENING[3:]] if negate else list(_OPENING)
        words[: len(opening)] = opening
        verdicts = POSITIVE_CUES if bool(label) != bool(negate) else NEGATIVE_CUES
        words[n - 2 - distance : n - distance] = [CUE_WORD, verdicts[rng.integers(len(verdicts))]]
        texts.append(" ".join(words).capitalize() + ".")
    return texts, labels
