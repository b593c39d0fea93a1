"""Nats and bits, torch-free: every stage converts log-likelihoods with these (one number or an array of
them, such as each test image's log-likelihood)."""

import math

LN2, LN256 = math.log(2.0), math.log(256.0)


def nats_to_bpd(nats, dims):
    """Nats per image (a log-likelihood, a difference or a standard error of one) in bits per dimension."""
    return nats / (dims * LN2)


def bpd_deq(ll_nats, dims):
    """Bits/dim of a dequantized density on [0,1]^D, an upper bound on discrete bits/dim (Theis et al.)."""
    return -nats_to_bpd(ll_nats - dims * LN256, dims)


def bpd_disc(ll_nats, dims):
    """Bits/dim of the probability of the 8-bit values."""
    return -nats_to_bpd(ll_nats, dims)


# a likelihood column's bits/dim from its log-likelihood in nats, by the column's kind (layout.PER_IMAGE_LL)
BPD = {"deq": bpd_deq, "disc": bpd_disc}
