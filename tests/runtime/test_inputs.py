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
