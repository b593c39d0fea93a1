"""Nats and bits, torch-free: every stage converts log-likelihoods with these."""

import math

LN2, LN256 = math.log(2.0), math.log(256.0)


def nats_to_bpd(nats, dims):
    """Nats per image (a log-likelihood, a difference or a standard error of one) in bits per dimension."""
    return nats / (dims * LN2)
