"""The text pipeline with Keras semantics: words, vocabulary, ids, padding.

Owns turning review strings into id sequences and fixed-length arrays:

* ``text_to_word_sequence``: Keras' tokenizer (lower-case, drop ``KERAS_FILTERS``, split on spaces),
  optionally replacing IMDB's ``<br />`` line breaks first. ``clean_words``: the chapter's Amazon cleaning
  (stop words and punctuation dropped, Porter stems), offline. ``tokenize`` applies either to many texts.
* ``Vocabulary`` (frozen data) with ``fit_vocabulary``, ``encode``, ``decode``, ``save_vocabulary`` and
  ``load_vocabulary`` (plain JSON in a run directory).
* ``pad_sequences`` (equal to ``keras.utils.pad_sequences``) and ``sequence_lengths`` (tokens kept per row).

Id layout (every id lies in ``[0, vocab.size)`` and ``vocab.size <= num_words``, so an Embedding with input
dimension ``vocab.size`` covers every id; ``vocab.size == num_words`` whenever the training texts have enough
distinct words, as any real corpus does):

* ``0``: padding, never a word.
* ``vocab.start_id``: prepended to every sequence when ``start=True`` (``keras.datasets.imdb``'s
  ``start_char``).
* ``vocab.end_id``: appended to every sequence when ``end=True`` (a sentence language model's end token),
  reserved right after the start id; without it every other id is as before.
* ``vocab.oov_id``: words outside the vocabulary when ``oov=True`` (Keras' ``oov_token``, imdb's
  ``oov_char``); with ``oov=False`` such words are dropped, as Keras' ``Tokenizer`` does without an
  ``oov_token``.
* words from ``vocab.index_from`` on, most frequent first; ties keep first-seen order like Keras'
  ``Tokenizer``.

So ``fit_vocabulary(words, 8000)`` gives ids 0 pad, 1 OOV, 2..7999 words (``Tokenizer(8000, oov_token=...)``),
and ``fit_vocabulary(words, 8000, start=True, index_from=3)`` reproduces ``keras.datasets.imdb.load_data``'s
layout; ``fit_vocabulary(words, 8000, start=True, end=True)`` gives 0 pad, 1 start, 2 end, 3 OOV and
4..7999 words.
Reading data files and batching live in ``rnnjax.data.datasets``.
"""

import collections
import dataclasses
import functools
import itertools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
"""Keras' default ``filters``: every punctuation character except the apostrophe, plus tab and newline."""

OOV_WORD = "[UNK]"
"""What ``decode`` shows for the out-of-vocabulary id."""

VOCABULARY_FILE = "vocabulary.json"

ENGLISH_STOP_WORDS = frozenset(
    """i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he
    him his himself she she's her hers herself it it's its itself they them their theirs themselves what
    which who whom this that that'll these those am is are was were be been being have has had having do
    does did doing a an the and but if or because as until while of at by for with about against between
    into through during before after above below to from up down in out on off over under again further then
    once here there when where why how all any both each few more most other some such no nor not only own
    same so than too very s t can will just don don't should should've now d ll m o re ve y ain aren aren't
    couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn
    mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't won won't
    wouldn wouldn't""".split()  # noqa: SIM905
)
"""NLTK's English stop words: the 179 of ``nltk.corpus.stopwords.words("english")`` up to NLTK 3.8."""

_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# NLTK's word_tokenize first splits sentences with the punkt model (a download); splitting after ., ! or ?
# followed by whitespace gives the same word tokens for ordinary prose without it.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_HAS_ALNUM = re.compile(r"[^\W_]")


@functools.lru_cache(maxsize=None)
def _nltk():
    """NLTK's Treebank word tokenizer and Porter stemmer, imported on first use (NLTK is slow to import)."""
    from nltk.stem.porter import PorterStemmer
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer(), PorterStemmer()


class DataError(ValueError):
    """Unusable input data; the message names the file (and line) and the problem, on one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))  # a quoted OS or parser message may span lines


def text_to_word_sequence(
    text: str,
    filters: str = KERAS_FILTERS,
    lower: bool = True,
    split: str = " ",
    *,
    strip_html: bool = False,
) -> list[str]:
    """Splits a text into words exactly as Keras' ``text_to_word_sequence``.

    Args:
      text: the raw text.
      filters: characters replaced by ``split`` before splitting.
      lower: lower-case the text first.
      split: the word separator.
      strip_html: replace HTML line breaks (``<br />``, as in IMDB texts) by ``split`` first, so they do not
        become the word "br".

    Returns:
      The non-empty words, e.g. ``["an", "excellent", "movie"]`` for ``"An excellent movie!"``.
    """
    if strip_html:
        text = _HTML_BREAK.sub(split, text)
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({c: split for c in filters}))
    return [word for word in text.split(split) if word]


def clean_words(
    text: str, *, strip_html: bool = False, stem: Callable[[str], str] | None = None
) -> list[str]:
    """The chapter's Amazon cleaning: lower-case, tokenize, drop stop words and punctuation, Porter-stem.

    Tokens are NLTK's Treebank-style words of each sentence (as ``nltk.word_tokenize``, with sentences split
    at ``.``, ``!`` or ``?`` followed by space instead of the downloadable punkt model). A token is
    punctuation when it has no letter or digit (``,``, ``...``, ``''``); the stop words are
    ``ENGLISH_STOP_WORDS``.

    Args:
      text: the raw text.
      strip_html: replace HTML line breaks by spaces first.
      stem: the stemmer (Porter's when None); ``tokenize`` passes a memoized one.

    Returns:
      The stemmed words, e.g. ``["great", "cd", "love", "voic"]`` for ``"Great CD: I love the voices."``.
    """
    if strip_html:
        text = _HTML_BREAK.sub(" ", text)
    word_tokenizer, stemmer = _nltk()
    stem = stem or stemmer.stem
    words = (w for s in _SENTENCE_END.split(text.lower()) for w in word_tokenizer.tokenize(s))
    return [stem(w) for w in words if w not in ENGLISH_STOP_WORDS and _HAS_ALNUM.search(w)]


def tokenize(texts: Iterable[str], *, method: str = "keras", strip_html: bool = True) -> list[list[str]]:
    """Splits many texts into words.

    Args:
      texts: raw texts.
      method: ``"keras"``: ``text_to_word_sequence`` with Keras' defaults; ``"porter"``: ``clean_words``.
      strip_html: replace HTML line breaks by spaces first.

    Returns:
      One word list per text.

    Raises:
      ValueError: for an unknown ``method``.
    """
    if method == "keras":
        return [text_to_word_sequence(t, strip_html=strip_html) for t in texts]
    if method == "porter":
        stem = functools.lru_cache(maxsize=None)(_nltk()[1].stem)  # a corpus has few distinct words
        return [clean_words(t, strip_html=strip_html, stem=stem) for t in texts]
    raise ValueError(f"method={method!r} is not a tokenizer: use 'keras' or 'porter'")


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """A fitted vocabulary: ``words[i]`` has id ``index_from + i``; see the module docstring for the layout.

    Attributes:
      words: the kept words, most frequent first.
      index_from: the id of ``words[0]``.
      oov_id: the id of out-of-vocabulary words, or None to drop them.
      start_id: the id prepended to every sequence, or None.
      end_id: the id appended to every sequence, or None (vocabulary files without it have none).
    """

    words: tuple[str, ...]
    index_from: int
    oov_id: int | None
    start_id: int | None
    end_id: int | None = None

    @property
    def size(self) -> int:
        """The number of ids, V: every id is in ``[0, size)``; the Embedding's input dimension."""
        return self.index_from + len(self.words)

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """Word to id."""
        return {word: self.index_from + i for i, word in enumerate(self.words)}


def fit_vocabulary(
    texts_words: Iterable[Sequence[str]],
    num_words: int | None = None,
    *,
    oov: bool = True,
    start: bool = False,
    end: bool = False,
    index_from: int | None = None,
) -> Vocabulary:
    """Ranks the words of the training texts by frequency and keeps the most frequent.

    Args:
      texts_words: the word lists of the training texts only.
      num_words: the number of ids including the reserved ones (Keras' ``num_words``); None keeps every word.
      oov: reserve an id for out-of-vocabulary words (otherwise ``encode`` drops them).
      start: reserve an id prepended to every sequence.
      end: reserve an id appended to every sequence, right after the start id.
      index_from: the first word id; None for the first free id after the reserved ones.

    Returns:
      The vocabulary, with ``size <= num_words``.

    Raises:
      ValueError: if ``index_from`` overlaps the reserved ids or ``num_words`` leaves no room for a word.
    """
    reserved = 1 + int(start) + int(end) + int(oov)
    index_from = reserved if index_from is None else index_from
    if index_from < reserved:
        raise ValueError(
            f"index_from={index_from} overlaps the reserved ids 0..{reserved - 1}: use >= {reserved}"
        )
    if num_words is not None and num_words <= index_from:
        raise ValueError(f"num_words={num_words} leaves no id for words, which start at {index_from}")
    counts = collections.Counter()
    for words in texts_words:
        counts.update(words)
    # Counter keeps first-seen order and sorted() is stable, so equal counts stay in first-seen order (Keras).
    ranked = sorted(counts, key=counts.__getitem__, reverse=True)
    kept = ranked if num_words is None else ranked[: num_words - index_from]
    return Vocabulary(
        words=tuple(kept),
        index_from=index_from,
        oov_id=reserved - 1 if oov else None,
        start_id=1 if start else None,
        end_id=1 + int(start) if end else None,
    )


def encode(vocab: Vocabulary, words: Sequence[str], *, end: bool = True) -> list[int]:
    """Maps words to ids: start id first, end id last (if any), unknown words to ``oov_id`` or dropped.

    Args:
      vocab: the vocabulary.
      words: one text's words.
      end: append the end id (when the vocabulary has one); False for a prompt that is to be continued.

    Returns:
      The ids, each in ``[1, vocab.size)``.
    """
    index = vocab.index
    if vocab.oov_id is None:
        ids = [i for i in map(index.get, words) if i is not None]
    else:
        ids = list(map(index.get, words, itertools.repeat(vocab.oov_id)))  # C-level loop: twice as fast
    if vocab.start_id is not None:
        ids.insert(0, vocab.start_id)
    if end and vocab.end_id is not None:
        ids.append(vocab.end_id)
    return ids


def decode(vocab: Vocabulary, ids: Iterable[int]) -> list[str]:
    """Maps ids back to words, skipping padding, the start id and the end id; the OOV id becomes ``OOV_WORD``.

    Args:
      vocab: the vocabulary.
      ids: ids in ``[0, vocab.size)``, e.g. a row of a padded batch.

    Returns:
      The words.

    Raises:
      ValueError: for an id outside ``[0, vocab.size)`` or in the unused reserved range.
    """
    words = []
    for i in map(int, ids):
        if i == 0 or i == vocab.start_id or i == vocab.end_id:
            continue
        if i == vocab.oov_id:
            words.append(OOV_WORD)
        elif vocab.index_from <= i < vocab.size:
            words.append(vocab.words[i - vocab.index_from])
        else:
            raise ValueError(f"ids contains {i}, which is not an id of this vocabulary (size {vocab.size})")
    return words


def save_vocabulary(vocab: Vocabulary, directory: str | Path) -> Path:
    """Writes the vocabulary as plain JSON to ``directory/vocabulary.json``.

    Args:
      vocab: the vocabulary.
      directory: a run directory; created if missing.

    Returns:
      The file written.
    """
    path = Path(directory) / VOCABULARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = {f.name: getattr(vocab, f.name) for f in dataclasses.fields(vocab)}
    if vocab.end_id is None:  # files of vocabularies without an end id stay as they always were
        del fields["end_id"]
    path.write_text(json.dumps(fields, ensure_ascii=False, indent=0), encoding="utf-8")
    return path


def load_vocabulary(directory: str | Path) -> Vocabulary:
    """Reads the vocabulary that ``save_vocabulary`` wrote to ``directory``.

    Args:
      directory: the run directory.

    Returns:
      The vocabulary.

    Raises:
      DataError: if the file is missing, unreadable or not a vocabulary.
    """
    path = Path(directory) / VOCABULARY_FILE
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
        vocab = Vocabulary(**{**fields, "words": tuple(fields["words"])})
    except OSError as e:
        raise DataError(f"{path}: cannot read the vocabulary ({e.strerror})") from None
    except (ValueError, TypeError, KeyError) as e:
        raise DataError(f"{path}: not a vocabulary file ({type(e).__name__}: {e})") from None
    if not all(isinstance(w, str) for w in vocab.words) or not isinstance(vocab.index_from, int):
        raise DataError(f"{path}: not a vocabulary file (words must be strings, index_from an integer)")
    if not (vocab.end_id is None or isinstance(vocab.end_id, int)):
        raise DataError(f"{path}: not a vocabulary file (end_id must be an integer or null)")
    return vocab


def pad_sequences(
    sequences: Sequence[Sequence[int]],
    maxlen: int | None = None,
    dtype: str = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: float = 0,
) -> np.ndarray:
    """Pads and truncates sequences to one length, exactly as ``keras.utils.pad_sequences``.

    Args:
      sequences: N id sequences (lists or 1-D arrays), possibly empty.
      maxlen: the length T; None for the longest sequence's length.
      dtype: the output dtype.
      padding: ``"pre"`` pads on the left (Keras' default), ``"post"`` on the right.
      truncating: ``"pre"`` drops a long sequence's start (keeps its end), ``"post"`` drops its end.
      value: the padding value.

    Returns:
      ``[N, T]`` array of ``dtype``.

    Raises:
      ValueError: for ``maxlen < 1`` or an unknown ``padding`` or ``truncating``.
    """
    if padding not in ("pre", "post"):
        raise ValueError(f"padding={padding!r} is not 'pre' or 'post'")
    if truncating not in ("pre", "post"):
        raise ValueError(f"truncating={truncating!r} is not 'pre' or 'post'")
    if maxlen is not None and maxlen < 1:
        raise ValueError(f"maxlen={maxlen} must be None or >= 1")
    if maxlen is None:
        maxlen = max(map(len, sequences), default=0)
    out = np.full((len(sequences), maxlen), value, dtype=dtype)
    for row, seq in zip(out, sequences):
        kept = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
        start = maxlen - len(kept) if padding == "pre" else 0
        row[start : start + len(kept)] = kept
    return out


def sequence_lengths(sequences: Sequence[Sequence[int]], maxlen: int | None = None) -> np.ndarray:
    """The number of real tokens that ``pad_sequences`` keeps per sequence: ``min(len, maxlen)``.

    Args:
      sequences: N id sequences.
      maxlen: as in ``pad_sequences``.

    Returns:
      ``[N] int32`` lengths, each ``<= T``.
    """
    lengths = np.fromiter(map(len, sequences), dtype=np.int32, count=len(sequences))
    return lengths if maxlen is None else np.minimum(lengths, maxlen, dtype=np.int32)
