"""Dataset statistics: counts, label balance, lengths, OOV rate, maxlen coverage, and a length histogram.

    python -m experiments.data_stats --config=rnnjax/configs/default.py [--config.data.name=csv] [--out=DIR]

The data location comes from the config or, when empty, from $RNNJAX_IMDB_DIR / $RNNJAX_AMAZON_DIR (see
experiments/_cli.py). Writes DIR/lengths.png.
"""

from pathlib import Path

from absl import flags

from experiments import _cli

_CONFIG = _cli.define_config(_cli.REPO / "rnnjax" / "configs" / "default.py", "config file")
_OUT = flags.DEFINE_string("out", ".", "folder for lengths.png")


def main(argv: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tensorflow_datasets as tfds

    from rnnjax.data import datasets as data

    _cli.no_positional(argv)
    config = _cli.with_data_location(_CONFIG.value)
    tfds.disable_progress_bar()
    stats = data.describe_splits(config.data, seed=config.seed)
    print(f"dataset {stats['name']}: vocabulary size {stats['vocab_size']}, maxlen {stats['maxlen']}")
    print(
        f"{'split':<11}{'examples':>9}  {'label balance (neg/pos)':<26}{'length p50/p90/p95/p99/max':<28}"
        f"{'oov rate':>9}{'reviews <= maxlen':>19}{'tokens kept':>13}"
    )
    for split, s in stats["splits"].items():
        counts = [int(c) for c in s["label_counts"]]
        if len(counts) == 2:
            neg, pos = counts
            balance = f"{neg}/{pos} ({pos / max(neg + pos, 1):.1%} pos)"
        else:  # several classes: counts in class order (stats["classes"])
            balance = "/".join(str(c) for c in counts)
        lengths = "/".join(f"{v:.0f}" for v in s["length_percentiles"].values())
        print(
            f"{split:<11}{s['examples']:>9}  {balance:<26}{lengths:<28}{s['oov_rate']:>9.2%}"
            f"{s['maxlen_coverage']:>19.1%}{s['token_coverage']:>13.1%}"
        )
    fig, ax = plt.subplots(figsize=(7, 4))
    longest = max((int(s["lengths"].max()) for s in stats["splits"].values() if len(s["lengths"])), default=1)
    for split, s in stats["splits"].items():
        ax.hist(
            s["lengths"], bins=60, range=(0, longest), histtype="step", label=split
        )  # the same bins for all
    ax.axvline(stats["maxlen"], color="k", linestyle="--", label=f"maxlen {stats['maxlen']}")
    ax.set(xlabel="tokens per review", ylabel="reviews", title=f"{stats['name']}: review lengths")
    ax.legend()
    path = Path(_OUT.value) / "lengths.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    _cli.run(main)
