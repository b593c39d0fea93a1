"""The one seeding rule: each purpose its own stream, the same draws for the same (seed, purpose)."""

import torch

from vaebench import seeding

STREAMS = {name: value for name, value in vars(seeding).items() if name.startswith("STREAM_")}


def test_every_purpose_has_a_stream_of_its_own():
    assert len(STREAMS) > 10 and len(set(STREAMS.values())) == len(STREAMS)


def test_a_stream_repeats_for_its_seed_and_differs_across_seeds_purposes_and_indices():
    first = seeding.stream_seed(3, seeding.STREAM_TRAINING)
    assert first == seeding.stream_seed(3, seeding.STREAM_TRAINING) and 0 <= first < 2**64
    others = {
        seeding.stream_seed(4, seeding.STREAM_TRAINING),
        seeding.stream_seed(3, seeding.STREAM_WEIGHTS),
        seeding.stream_seed(3, seeding.STREAM_RESUME, 1),
        seeding.stream_seed(3, seeding.STREAM_RESUME, 2),
    }
    assert len(others) == 4 and first not in others


def test_a_generator_draws_its_streams_numbers():
    a = torch.rand(5, generator=seeding.stream_generator(0, seeding.STREAM_IS))
    b = torch.rand(5, generator=torch.Generator().manual_seed(seeding.stream_seed(0, seeding.STREAM_IS)))
    assert torch.equal(a, b)
