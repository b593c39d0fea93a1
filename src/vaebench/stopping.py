"""When a run has converged: the stopping rule on the validation ELBO, torch-free.

After every epoch the rule reads the validation ELBO (nats/image). An epoch *gains* when it beats the best
so far by more than `min_gain_bpd` bits/dim. After `patience` epochs without a gain, training returns to the
best epoch's weights and optimizer with the learning rate multiplied by `lr_decay`, and the count starts
again, at most `max_decays` times: returning makes a plateau after a collapse, which no later epoch may
beat, a fresh start at a gentler rate. When patience runs out with no decay left, the run has converged;
`max_epochs` caps it whatever happens. So at a `converged` stop the best validation ELBO rose by at most
`min_gain_bpd` over the last `patience` epochs, at the lowest learning rate: that rise is the *drift* each
run records, and the report weighs it against the gaps between families.

The state is a plain dict of numbers, saved in every checkpoint, so a killed run resumes the rule where it
stood.
"""

import math
from dataclasses import asdict, dataclass, field

from vaebench.errors import VaebenchError
from vaebench.units import nats_to_bpd

CONVERGED, EPOCH_CAP, DIVERGED = "converged", "epoch_cap", "diverged"
STOP_REASONS = (CONVERGED, EPOCH_CAP, DIVERGED)
CONTINUE, DECAY = "continue", "decay"


@dataclass(frozen=True)
class StopRule:
    """The rule's settings: the config's `train.patience`, `min_gain_bpd`, `lr_decay`, `max_decays`, and
    `train.epochs` as the cap (a selection run's cap is `selection.epochs`)."""

    max_epochs: int
    patience: int
    min_gain_bpd: float
    lr_decay: float
    max_decays: int

    @classmethod
    def of(cls, train: dict, cap: int | None = None) -> "StopRule":
        """The rule of a config's `train` block (or a TrainConfig's fields), capped at `cap` if given."""
        keys = ("patience", "min_gain_bpd", "lr_decay", "max_decays")
        return cls(cap if cap is not None else train["epochs"], *(train[k] for k in keys))

    def check(self, cap_key: str = "train.epochs") -> None:
        """One line naming the key of a setting the rule cannot work with (`cap_key` names the cap's)."""
        problems = {
            "train.patience": (self.patience >= 1, f"must be at least 1, got {self.patience}"),
            cap_key: (
                self.max_epochs >= self.patience,
                f"the epoch cap ({self.max_epochs}) is below train.patience ({self.patience})",
            ),
            "train.min_gain_bpd": (self.min_gain_bpd >= 0, f"must be >= 0, got {self.min_gain_bpd}"),
            "train.lr_decay": (0 < self.lr_decay <= 1, f"must be in (0, 1], got {self.lr_decay}"),
            "train.max_decays": (self.max_decays >= 0, f"must be >= 0, got {self.max_decays}"),
        }
        for key, (ok, message) in problems.items():
            if not ok:
                raise VaebenchError(f"config key '{key}': {message}")


@dataclass
class StopState:
    """Where the rule stands after an epoch: a checkpoint keeps `to_dict()`, `StopState(**d)` resumes."""

    best_epoch: int = 0
    best_nats: float = -math.inf
    since_gain: int = 0  # epochs since the last gain
    decays: int = 0
    lr_scale: float = 1.0  # the learning rate is the configured one times this
    bests: list[float] = field(default_factory=list)  # the best validation ELBO after each epoch

    def to_dict(self) -> dict:
        return asdict(self)


def step(rule: StopRule, state: StopState, epoch: int, val_nats: float, dims: int) -> str:
    """Update `state` with epoch `epoch`'s validation ELBO; return what to do next:
    CONTINUE, DECAY (the caller returns to the best epoch at its learning rate times `state.lr_scale`),
    CONVERGED or EPOCH_CAP."""
    gain_nats = rule.min_gain_bpd * dims * math.log(2)
    if val_nats > state.best_nats + gain_nats:
        state.since_gain = 0
    else:
        state.since_gain += 1
    if val_nats > state.best_nats:
        state.best_nats, state.best_epoch = val_nats, epoch
    state.bests.append(state.best_nats)
    action = CONTINUE
    if state.since_gain >= rule.patience:
        if state.decays < rule.max_decays:
            state.decays += 1
            state.lr_scale *= rule.lr_decay
            state.since_gain = 0
            action = DECAY
        else:
            action = CONVERGED
    if action in (CONTINUE, DECAY) and epoch >= rule.max_epochs:
        action = EPOCH_CAP
    return action


def drift_bpd(state: StopState, window: int, dims: int) -> float | None:
    """The best validation ELBO's rise over the last `window` epochs, in bits/dim: what training was
    still gaining when it stopped (None before `window` + 1 epochs)."""
    if len(state.bests) <= window or not math.isfinite(state.bests[-window - 1]):
        return None
    return nats_to_bpd(state.bests[-1] - state.bests[-window - 1], dims)
