"""Samples continuations of a prompt from a trained language model.

    python -m experiments.generate --workdir=runs/lm_gru --prompt="this movie" --num_words=30 --temperature=0.8
    python -m experiments.generate --workdir=runs/lm_gru --prompt="the acting" --top_k=40 --seed=3 --num_samples=5
    python -m experiments.generate --workdir=runs/lm_gru --prompt="i think" --greedy
    python -m experiments.generate --workdir=runs/theano_gru_lm --num_samples=5

The prompt goes through the run's own tokenizer and vocabulary (unknown words become [UNK]) and follows the
start id; with no prompt, generation starts from the start id alone. The same seed gives the same words.
Padding, the start id and [UNK] are never generated. A model trained with an end id (``data.end_token``, e.g.
sentences) stops each sample at its end id, as its sentences ended; a sample still open after --num_words
words is shown with a trailing "...".

A backward model (``data.reverse``) writes the other way: the prompt is how the text ends, the model writes
the words before it, last first, and a sample stops where the model places the start of a text (its start
id). Samples are shown in reading order, ``<generated> << <prompt>``, with a leading "..." while still open.
"""

from pathlib import Path

from absl import flags

from experiments import _cli

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "run directory written by experiments.train_lm", required=True
)
_PROMPT = flags.DEFINE_string("prompt", "", "text to continue (may be empty)")
_NUM_WORDS = flags.DEFINE_integer("num_words", 30, "words to generate", lower_bound=1)
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "softmax temperature (> 0)")
_TOP_K = flags.DEFINE_integer("top_k", 0, "sample among the k most likely words (0: all)", lower_bound=0)
_SEED = flags.DEFINE_integer("seed", 0, "sampling seed")
_GREEDY = flags.DEFINE_bool("greedy", False, "take the most likely word at each step")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1, "continuations to draw", lower_bound=1)
_CHECKPOINT = flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "which parameters to use")


def main(argv: list[str]) -> None:
    import jax
    import jax.numpy as jnp

    from rnnjax import lm
    from rnnjax.data import reverse, text
    from rnnjax.training import runs

    _cli.no_positional(argv)
    if _TEMPERATURE.value <= 0 and not _GREEDY.value:
        raise _cli.UsageError(f"--temperature must be > 0, got {_TEMPERATURE.value}; use --greedy for argmax")
    workdir = Path(_WORKDIR.value)
    if not workdir.is_dir():
        raise _cli.UsageError(
            f"--workdir={workdir}: no such run directory; train with experiments.train_lm first"
        )
    run = runs.load_run(workdir, which=_CHECKPOINT.value, kind="language_model")
    spec, params, vocab, data_cfg = run.spec, run.params, run.vocabulary, run.config["data"]
    if _TOP_K.value > spec.vocab_size:
        raise _cli.UsageError(
            f"--top_k must be at most the vocabulary size {spec.vocab_size}, got {_TOP_K.value}"
        )
    words = text.tokenize([_PROMPT.value], method=data_cfg["tokenizer"], strip_html=data_cfg["strip_html"])[0]
    backward = reverse.reads_reversed(data_cfg)
    if backward:  # the prompt ends the text: its ids reversed, without the start id, which ends a sample
        ids = text.encode(vocab, words, end=True)[::-1][:-1 if vocab.start_id is not None else None]
        stop = vocab.start_id
    else:
        ids, stop = text.encode(vocab, words, end=False), vocab.end_id  # a prompt is continued, not ended
    if backward and not ids:
        raise _cli.UsageError("this backward model needs a --prompt: the words that end the text it writes")
    prompt = jnp.asarray([ids] * _NUM_SAMPLES.value, jnp.int32)
    never = (vocab.end_id, vocab.oov_id) if backward else (vocab.start_id, vocab.oov_id)
    banned = tuple(sorted({0, *(i for i in never if i is not None)}))
    out = lm.generate(
        spec,
        params,
        prompt,
        jax.random.key(_SEED.value),
        num_steps=_NUM_WORDS.value,
        temperature=float(_TEMPERATURE.value),
        top_k=_TOP_K.value,
        greedy=_GREEDY.value,
        banned=banned,
        end_id=stop,
    )
    shown = " ".join(text.decode(vocab, ids[::-1] if backward else ids))
    for row in jax.device_get(out["tokens"]):
        still_open = stop is not None and stop not in row
        if backward:
            print(f"{'... ' if still_open else ''}{' '.join(text.decode(vocab, row[::-1]))} << {shown}")
        else:
            print(f"{shown} >> {' '.join(text.decode(vocab, row))}{' ...' if still_open else ''}")


if __name__ == "__main__":
    _cli.run(main)
