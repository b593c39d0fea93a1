"""Peer comparison: pythae's importance-sampled log-likelihood (pythae.models.VAE.get_nll) against ours, on
the same model, test images, K and threads.

pythae is an optional benchmark dependency with old pins: install it in a venv that reuses this torch (check
first that pip would not replace torch: `pip install --dry-run pythae`), and run the script with that venv:

    python -m venv --system-site-packages /tmp/pythae-venv && /tmp/pythae-venv/bin/pip install pythae
    /tmp/pythae-venv/bin/python bench/peer_pythae.py [--k 1000] [--n-test 20] [--rounds 3] [--threads 1]

The model is the benchmark's two-epoch `bernoulli` mlp (binary cross-entropy on logits, pythae's
reconstruction_loss='bce'), its weights copied into a pythae.models.VAE whose encoder and decoder have the
same layers (the decoder ends in a sigmoid: pythae's BCE takes probabilities). Each round times, interleaved:
pythae's get_nll, our likelihood.batched_ll (eager and compiled, as `vaebench evaluate` runs it) and the bare
decoder at our rows per call; the table gives microseconds per image-sample. Not like for like, and in
pythae's favour: pythae re-encodes the image for every batch of samples and scores one column (BCE, which is
not a normalised density), where we encode once and score two (the density of the dequantized image and the
probability of its 8-bit values, both as a continuous Bernoulli). The log-likelihoods are printed beside.
"""

import argparse
import copy
import sys
import time

import numpy as np
import torch
from common import DATA_DIR, print_table, ratio, summary, write_result
from eval_throughput import decoder_rows_per_second, likelihoods, scorers_for, trained_model

from vaebench.data import load_dataset
from vaebench.likelihood import chunk_for
from vaebench.posterior import dequantize_blocks
from vaebench.seeding import STREAM_TEST_DEQ, stream_generator

try:
    from pythae.models import VAE as PythaeVAE
    from pythae.models import VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
except ImportError:
    sys.exit(
        "peer_pythae: error: pythae is not installed here; its docstring (python bench/peer_pythae.py "
        "--help, in a Python that has it) says how to give it a venv of its own"
    )


class Encoder(BaseEncoder):
    """Our encoder's layers (a copy), returning what pythae expects."""

    def __init__(self, layers: torch.nn.Module):
        BaseEncoder.__init__(self)
        self.layers = layers

    def forward(self, x):
        mu, log_var = self.layers(x).chunk(2, dim=1)
        return ModelOutput(embedding=mu, log_covariance=log_var)


class Decoder(BaseDecoder):
    """Our decoder's layers (a copy) and a sigmoid: Bernoulli means, as pythae's BCE takes them."""

    def __init__(self, layers: torch.nn.Module, shape: tuple[int, ...]):
        BaseDecoder.__init__(self)
        self.layers, self.shape = layers, shape

    def forward(self, z):
        return ModelOutput(reconstruction=torch.sigmoid(self.layers(z)).view(-1, *self.shape))


def pythae_copy(model) -> PythaeVAE:
    """pythae's VAE with copies of `model`'s encoder and decoder weights."""
    cfg = model.config
    shape = (cfg.channels, cfg.height, cfg.width)
    config = VAEConfig(input_dim=shape, latent_dim=cfg.latent_dim, reconstruction_loss="bce")
    peer = PythaeVAE(
        config,
        encoder=Encoder(copy.deepcopy(model.encoder)),
        decoder=Decoder(copy.deepcopy(model.decoder), shape),
    )
    return peer.eval()


def pythae_seconds(peer: PythaeVAE, x: torch.Tensor, k: int, batch: int) -> tuple[float, float]:
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.no_grad():
        ll = peer.get_nll(x, n_samples=k, batch_size=batch)
    return time.perf_counter() - t0, float(ll)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--k", type=int, default=1000, help="importance samples per image, a multiple of --peer-batch"
    )
    p.add_argument("--n-test", type=int, default=20)
    p.add_argument("--batch", type=int, default=100, help="our test images per batch (evaluate's default)")
    p.add_argument(
        "--peer-batch", type=int, default=100, help="pythae's samples per decoder call (its default)"
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if args.k % args.peer_batch:
        p.error(f"--k {args.k} is not a multiple of --peer-batch {args.peer_batch} (pythae drops the rest)")
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist5k", DATA_DIR)
    model = trained_model("bernoulli", data)
    peer = pythae_copy(model)
    x = dequantize_blocks(data.test_images, args.n_test, stream_generator(0, STREAM_TEST_DEQ, "cpu"))
    scorers = scorers_for(model, ["eager", "compiled"])
    for score in scorers.values():  # compile (or load) every shape first
        likelihoods(model, data, args.k, args.n_test, args.batch, score)
    chunk = chunk_for(model, None, args.k, min(args.batch, args.n_test), data.dims)
    seconds = {"pythae get_nll (re-encodes, one column: BCE)": []}
    seconds.update({f"ours, {mode} (two columns)": [] for mode in scorers})
    bound, lls = [], {}
    for _ in range(args.rounds):
        key = next(iter(seconds))
        t, lls[key] = pythae_seconds(peer, x, args.k, args.peer_batch)
        seconds[key].append(t)
        for mode, score in scorers.items():
            t, deq, disc = likelihoods(model, data, args.k, args.n_test, args.batch, score)
            seconds[f"ours, {mode} (two columns)"].append(t)
            lls[f"ours, {mode} (two columns)"] = (deq.mean().item(), disc.mean().item())
        bound.append(decoder_rows_per_second(model, chunk * min(args.batch, args.n_test), 10))
    work = args.k * args.n_test
    us = {key: summary([s / work * 1e6 for s in v]) for key, v in seconds.items()}
    bound_us = summary([1e6 / r for r in bound])
    ours = us["ours, compiled (two columns)"]
    rows = [
        [
            key,
            s["median"],
            f"{s['min']:.3g}-{s['max']:.3g}",
            ratio(s, ours),
            ratio(bound_us, s),
            lls[key] if isinstance(lls[key], float) else f"deq {lls[key][0]:.2f}, disc {lls[key][1]:.2f}",
        ]
        for key, s in us.items()
    ]
    rows.append(
        [
            "bare decoder (our rows per call)",
            bound_us["median"],
            f"{bound_us['min']:.3g}-{bound_us['max']:.3g}",
            ratio(bound_us, ours),
            1.0,
            "-",
        ]
    )
    print_table(
        f"importance-sampled log-likelihood, K={args.k}, {args.n_test} test images, {args.threads} "
        f"thread(s), {args.rounds} interleaved rounds (pythae {args.peer_batch} samples per call)",
        ["method", "us/image-sample", "min-max", "/ ours compiled", "bound / this", "mean LL, nats"],
        rows,
    )
    print(
        "note: pythae re-encodes the image for every batch of samples and scores one column (BCE on x~, "
        "not a normalised density); ours encodes once and scores two (CB density of x~ and CB probability "
        "of the 8-bit values)",
        file=sys.stderr,
    )
    write_result(
        "peer_pythae",
        {
            "k": args.k,
            "n_test": args.n_test,
            "threads": args.threads,
            "peer_batch": args.peer_batch,
            "us_per_image_sample": us,
            "bound_us_per_image_sample": bound_us,
            "log_likelihoods": {k: list(np.atleast_1d(v)) for k, v in lls.items()},
        },
    )


if __name__ == "__main__":
    main()
