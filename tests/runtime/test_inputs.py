import itertools
import math

import numpy as np

from clfserve.runtime.inputs import pad_chunk, plan_chunks


def test_chunks_are_length_sorted_and_bounded() -> None:
    lengths = [5, 1, 9, 3, 7, 2, 8]
    chunks = list(plan_chunks(lengths, batch_size=3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    flat = np.concatenate(chunks)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)


def test_pad_chunk_pads_to_the_chunks_longest() -> None:
    ids = [[101, 5, 102], [101, 102], [101, 7, 8, 9, 102]]
    types = [[0] * len(row) for row in ids]
    chunk = pad_chunk(np.array([1, 0]), ids, types, pad_id=0)
    assert chunk.input_ids.tolist() == [[101, 102, 0], [101, 5, 102]]
    assert chunk.attention_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert chunk.token_type_ids.shape == (2, 3)


def _check_token_plan(lengths: list[int], cap: int, budget: int) -> list[list[int]]:
    chunks = [c.tolist() for c in plan_chunks(lengths, cap, token_budget=budget)]
    flat = [i for chunk in chunks for i in chunk]
    assert sorted(flat) == list(range(len(lengths)))  # every text once
    assert [lengths[i] for i in flat] == sorted(lengths)  # length-sorted, stable
    for chunk in chunks:
        assert 1 <= len(chunk) <= cap
        if len(chunk) > 1:
            assert len(chunk) * max(lengths[i] for i in chunk) <= budget
    return chunks


def test_a_token_budget_puts_short_texts_in_big_chunks_and_long_ones_in_small() -> None:
    lengths = [30, 4, 100, 30, 4, 4, 30, 4, 30, 4]
    chunks = _check_token_plan(lengths, cap=5, budget=64)
    # five short texts fill the row cap (20 tokens); 30-token ones go two by two; 100 alone
    assert [len(c) for c in chunks] == [5, 2, 2, 1]


def test_each_chunk_is_as_large_as_the_budget_allows() -> None:
    lengths = [5, 1, 9, 3, 7, 2, 8]
    chunks = _check_token_plan(lengths, cap=8, budget=16)
    assert chunks == [[1, 5, 3], [0, 4], [6], [2]]
    for chunk, following in itertools.pairwise(chunks):
        widened = [*chunk, following[0]]
        assert len(widened) * max(lengths[i] for i in widened) > 16


def test_token_plans_of_random_lengths_obey_budget_and_cap() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        lengths = rng.integers(1, 65, size=int(rng.integers(1, 300))).tolist()
        cap, budget = int(rng.integers(1, 64)), int(rng.integers(1, 2048))
        _check_token_plan(lengths, cap, budget)


def test_without_a_token_budget_the_plan_is_row_chunks() -> None:
    lengths = [5, 1, 9, 3, 7, 2, 8]
    rows = [c.tolist() for c in plan_chunks(lengths, 3)]
    huge = [c.tolist() for c in plan_chunks(lengths, 3, token_budget=10_000)]
    assert rows == huge == [[1, 5, 3], [0, 4, 6], [2]]


def _work(lengths: list[int], chunks: list[list[int]], run_cost: float) -> float:
    return sum(len(c) * max(lengths[i] for i in c) + run_cost for c in chunks)


def _least_work(ordered: list[int], cap: int, budget: int | None, run_cost: float) -> float:
    """Every split of the sorted lengths into chunks, tried one by one (small inputs only)."""
    best = math.inf
    n = len(ordered)
    for cuts in itertools.product([False, True], repeat=n - 1):
        bounds = [0, *[i + 1 for i, cut in enumerate(cuts) if cut], n]
        chunks = [ordered[a:b] for a, b in itertools.pairwise(bounds)]
        if any(len(c) > cap or (budget and len(c) > 1 and len(c) * c[-1] > budget) for c in chunks):
            continue
        best = min(best, sum(len(c) * c[-1] + run_cost for c in chunks))
    return best


def test_a_run_cost_finds_the_split_with_the_least_work() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        lengths = rng.integers(1, 40, size=int(rng.integers(1, 11))).tolist()
        cap = int(rng.integers(1, 6))
        budget = int(rng.integers(20, 120)) if rng.random() < 0.3 else None
        run_cost = float(rng.integers(0, 30))
        chunks = [c.tolist() for c in plan_chunks(lengths, cap, budget, run_cost)]
        flat = [i for chunk in chunks for i in chunk]
        assert sorted(flat) == list(range(len(lengths)))
        assert [lengths[i] for i in flat] == sorted(lengths)
        assert all(1 <= len(chunk) <= cap for chunk in chunks)
        least = _least_work(sorted(lengths), cap, budget, run_cost)
        assert _work(lengths, chunks, run_cost) == least


def test_a_long_text_runs_alone_when_its_padding_costs_more_than_a_run() -> None:
    lengths = [10, 10, 10, 60, 10, 10, 10, 10]
    assert [c.tolist() for c in plan_chunks(lengths, 8)] == [[0, 1, 2, 4, 5, 6, 7, 3]]
    # 7 short texts + the long one alone: 70 + 60 + 2 runs, against 8 x 60 + 1 run
    cheap = [c.tolist() for c in plan_chunks(lengths, 8, run_cost=8)]
    assert cheap == [[0, 1, 2, 4, 5, 6, 7], [3]]
    # a run dearer than the padding it saves keeps them together
    assert [c.tolist() for c in plan_chunks(lengths, 8, run_cost=400)] == [[0, 1, 2, 4, 5, 6, 7, 3]]


def test_with_a_large_run_cost_the_plan_has_the_fewest_runs() -> None:
    rng = np.random.default_rng(2)
    for _ in range(50):
        lengths = rng.integers(1, 65, size=int(rng.integers(1, 300))).tolist()
        cap = int(rng.integers(1, 16))
        chunks = list(plan_chunks(lengths, cap, run_cost=1e6))
        assert len(chunks) == -(-len(lengths) // cap)
        assert _work(lengths, [c.tolist() for c in chunks], 0) <= _work(
            lengths, [c.tolist() for c in plan_chunks(lengths, cap)], 0
        )
