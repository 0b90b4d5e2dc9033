"""Prints the Keras-like parameter table of an experiment's model, without data or training.

    python -m experiments.summary --config=experiments/configs/bilstm.py

The vocabulary size is the config's ``data.num_words`` (the size a real corpus fills), as in the chapter.
"""


from experiments import _cli

_CONFIG = _cli.define_config(_cli.CONFIGS / "lstm.py", "experiment config file")


def main(argv: list[str]) -> None:
    import jax

    from rnnjax import models
    from rnnjax.training import classifier

    _cli.no_positional(argv)
    config = _CONFIG.value
    if config.model.get("factory"):  # a model of one's own: its parameters, counted from the pytree
        from rnnjax import model_api

        model = model_api.load_object(config.model.factory)(vocab_size=config.data.num_words, num_classes=2)
        params = jax.eval_shape(model.init, jax.random.key(config.seed))
        print(f"Model: {_cli.config_name(_CONFIG)} ({config.model.factory})")
        for path, leaf in jax.tree_util.tree_leaves_with_path(params):
            print(f"  {jax.tree_util.keystr(path):<40} {str(tuple(leaf.shape)):<16} {leaf.size:>12,}")
        print(f"Total params: {models.count_params(params):,}")
        return
    model_cfg = classifier.make_model_config(
        config.model, vocab_size=config.data.num_words, padding=config.data.padding
    )
    params = jax.eval_shape(lambda: models.init_model(model_cfg.spec, jax.random.key(config.seed)))
    print(f"Model: {_cli.config_name(_CONFIG)}")
    print(models.summary(model_cfg.spec, params))


if __name__ == "__main__":
    _cli.run(main)
