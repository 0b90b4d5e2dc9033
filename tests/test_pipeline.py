"""Tests for rnnjax.data.pipeline: batch contract, epoch orders, resuming from a state, process shards."""

import json

import grain
import numpy as np
import pytest

from rnnjax.data import pipeline

N, T, B = 11, 5, 4  # 11 examples: two full batches of 4 and one of 3 real rows + 1 padding row


def _arrays(n: int = N) -> dict[str, np.ndarray]:
    """Each row is recognisable: tokens row i starts with i + 1, lengths and labels are distinct per row."""
    tokens = np.arange(1, n * T + 1, dtype=np.int32).reshape(n, T)
    tokens[:, 0] = np.arange(1, n + 1)
    return {
        "tokens": tokens,
        "lengths": (np.arange(n, dtype=np.int32) % T) + 1,
        "label": np.arange(n, dtype=np.int32) % 2,
    }


def _ids(batches: list[dict]) -> np.ndarray:
    """Example ids (row index) of the real rows, in order."""
    return np.concatenate([b["tokens"][b["label"] >= 0, 0] - 1 for b in batches])


def _assert_batches_equal(actual: list[dict], expected: list[dict]) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.keys() == e.keys()
        for k in e:
            assert a[k].dtype == e[k].dtype
            np.testing.assert_array_equal(a[k], e[k], strict=True)


def test_shapes_dtypes_and_padding_rows():
    loader = pipeline.Loader(_arrays(), B, seed=0, shuffle=True)
    batches = list(loader.epoch(0))
    assert loader.steps_per_epoch == len(batches) == 3
    for b in batches:
        assert b["tokens"].shape == (B, T) and b["lengths"].shape == (B,) and b["label"].shape == (B,)
        assert {v.dtype for v in b.values()} == {np.dtype(np.int32)}
    last = batches[-1]
    assert (last["label"] >= 0).sum() == N - 2 * B
    np.testing.assert_array_equal(last["tokens"][-1], np.zeros(T, np.int32))
    assert last["lengths"][-1] == 0 and last["label"][-1] == -1


def test_drop_remainder():
    loader = pipeline.Loader(_arrays(), B, seed=0, shuffle=True, drop_remainder=True)
    batches = list(loader.epoch(0))
    assert loader.steps_per_epoch == len(batches) == 2
    assert all((b["label"] >= 0).all() for b in batches)


def test_every_example_once_per_epoch():
    loader = pipeline.Loader(_arrays(), B, seed=3, shuffle=True)
    for epoch in range(3):
        np.testing.assert_array_equal(np.sort(_ids(list(loader.epoch(epoch)))), np.arange(N))


def test_unshuffled_keeps_array_order():
    arrays = _arrays()
    batches = list(pipeline.Loader(arrays, B, seed=0, shuffle=False).epoch(5))
    np.testing.assert_array_equal(_ids(batches), np.arange(N))
    np.testing.assert_array_equal(np.concatenate([b["tokens"] for b in batches])[:N], arrays["tokens"])


def test_orders_differ_across_epochs_and_seeds_and_are_reproducible():
    arrays = _arrays(50)
    orders = {
        (seed, epoch): _ids(list(pipeline.Loader(arrays, 8, seed=seed, shuffle=True).epoch(epoch)))
        for seed in (0, 1)
        for epoch in (0, 1, 2)
    }
    distinct = {tuple(o) for o in orders.values()}
    assert len(distinct) == len(orders), "every (seed, epoch) should have its own permutation"
    again = pipeline.Loader(arrays, 8, seed=1, shuffle=True)  # a fresh loader: pure in (seed, epoch)
    np.testing.assert_array_equal(_ids(list(again.epoch(2))), orders[1, 2])
    assert not np.array_equal(orders[0, 0], np.arange(50))


@pytest.mark.parametrize("k", [0, 1, 2, 3])  # 0, the middle, the last batch, and after the end
def test_resume_from_state_gives_the_remaining_batches(k):
    loader = pipeline.Loader(_arrays(), B, seed=7, shuffle=True)
    full = list(loader.epoch(1))
    it = loader.epoch(1)
    head = [next(it) for _ in range(k)]
    assert it.position == k
    state = json.loads(json.dumps(it.get_state()))
    resumed = pipeline.Loader(_arrays(), B, seed=7, shuffle=True).epoch(1, state=state)
    assert resumed.position == k
    rest = list(resumed)
    assert resumed.position == len(full)
    _assert_batches_equal(head + rest, full)


def test_state_is_json_serialisable():
    it = pipeline.Loader(_arrays(), B, seed=0, shuffle=True).epoch(2)
    next(it)
    state = it.get_state()
    assert json.loads(json.dumps(state)) == state
    assert state["epoch"] == 2 and state["position"] == 1


def test_grain_iterator_state_survives_a_json_round_trip():
    ds = grain.MapDataset.range(10).shuffle(seed=5).batch(3).to_iter_dataset(pipeline._READ_OPTIONS)
    full = [x.tolist() for x in ds]
    it = iter(ds)
    head = [next(it).tolist() for _ in range(2)]
    state = json.loads(json.dumps(it.get_state()))
    it2 = iter(ds)
    it2.set_state(state)
    assert head + [x.tolist() for x in it2] == full


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_process_shards_reassemble_the_global_batch(drop_remainder):
    arrays, kwargs = _arrays(), dict(seed=2, shuffle=True, drop_remainder=drop_remainder)
    whole = list(pipeline.Loader(arrays, B, **kwargs).epoch(3))
    shards = [
        list(pipeline.Loader(arrays, B, process_index=i, process_count=2, **kwargs).epoch(3)) for i in (0, 1)
    ]
    assert all(len(s) == len(whole) for s in shards)
    for step, expected in enumerate(whole):
        local = [s[step] for s in shards]
        assert all(b["tokens"].shape == (B // 2, T) for b in local)
        _assert_batches_equal([{k: np.concatenate([b[k] for b in local]) for k in expected}], [expected])


def test_a_state_saved_by_one_process_resumes_another():
    arrays = _arrays()
    it0 = pipeline.Loader(arrays, B, seed=2, shuffle=True, process_index=0, process_count=2).epoch(0)
    next(it0)
    p1 = pipeline.Loader(arrays, B, seed=2, shuffle=True, process_index=1, process_count=2)
    _assert_batches_equal(list(p1.epoch(0, state=it0.get_state())), list(p1.epoch(0))[1:])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), "batch_size=0"),
        (dict(seed=-1), "seed=-1"),
        (dict(process_count=3), "process_count=3"),
        (dict(process_index=2, process_count=2), "process_index=2"),
        (dict(arrays={**_arrays(), "label": np.zeros(N - 1, np.int32)}), "lengths"),
        (dict(arrays={"tokens": _arrays()["tokens"]}), "no \\['lengths', 'label'\\]"),
    ],
)
def test_loader_errors(kwargs, match):
    args = dict(arrays=_arrays(), batch_size=B, seed=0, shuffle=True) | kwargs
    with pytest.raises(ValueError, match=match):
        pipeline.Loader(**args)


def test_epoch_and_state_errors():
    loader = pipeline.Loader(_arrays(), B, seed=0, shuffle=True)
    with pytest.raises(ValueError, match="epoch=-1"):
        loader.epoch(-1)
    state = loader.epoch(1).get_state()
    with pytest.raises(ValueError, match="epoch 1, not epoch 2"):
        loader.epoch(2, state=state)
    with pytest.raises(ValueError, match="loader with"):
        pipeline.Loader(_arrays(), 2, seed=0, shuffle=True).epoch(1, state=state)
    with pytest.raises(ValueError, match="loader with"):
        pipeline.Loader(_arrays(), B, seed=1, shuffle=True).epoch(1, state=state)
    with pytest.raises(ValueError, match="not from EpochIterator.get_state"):
        loader.epoch(1, state={"next_index": 0})
