"""The stopping rule, on hand-made validation curves (no training)."""

import math

import pytest

from vaebench.errors import VaebenchError
from vaebench.settings import TrainConfig
from vaebench.stopping import (
    CONTINUE,
    CONVERGED,
    DECAY,
    EPOCH_CAP,
    StopRule,
    StopState,
    drift_bpd,
    step,
)

DIMS = 784
BPD = DIMS * math.log(2)  # nats per image in one bit/dim
DEFAULTS = {k: getattr(TrainConfig(), k) for k in ("patience", "min_gain_bpd", "lr_decay", "max_decays")}


def make_rule(max_epochs: int = 100, **settings) -> StopRule:
    return StopRule(max_epochs, **{**DEFAULTS, **settings})


def actions(rule: StopRule, curve) -> list[str]:
    state = StopState()
    out = []
    for epoch, val in enumerate(curve, start=1):
        out.append(step(rule, state, epoch, val, DIMS))
        if out[-1] in (CONVERGED, EPOCH_CAP):
            break
    return out


def test_a_flat_curve_decays_then_converges_after_patience_each_time():
    rule = make_rule(100, patience=3, min_gain_bpd=0.001, lr_decay=0.5, max_decays=2)
    got = actions(rule, [0.0] * 20)
    # epoch 1 gains (from -inf), then 3 flat epochs per patience window: decay, decay, stop
    assert got == [CONTINUE] * 3 + [DECAY] + [CONTINUE] * 2 + [DECAY] + [CONTINUE] * 2 + [CONVERGED]


def test_gains_below_the_minimum_do_not_reset_patience_but_move_the_best():
    rule = make_rule(100, patience=3, min_gain_bpd=0.01, max_decays=0)
    step_nats = 0.5 * 0.01 * BPD  # half the minimum gain per epoch
    state = StopState()
    got = [step(rule, state, e, e * step_nats, DIMS) for e in range(1, 5)]
    assert got == [CONTINUE, CONTINUE, CONTINUE, CONVERGED]
    assert state.best_epoch == 4  # the best epoch still follows the curve
    assert drift_bpd(state, 3, DIMS) == pytest.approx(1.5 * 0.01)


def test_a_rising_curve_hits_the_cap():
    rule = make_rule(10, patience=2)
    got = actions(rule, [e * BPD for e in range(1, 50)])  # a bit/dim per epoch
    assert got == [CONTINUE] * 9 + [EPOCH_CAP]


def test_the_state_resumes_from_its_dict():
    rule = make_rule(100, patience=2, max_decays=1)
    curve = [1.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    whole = StopState()
    expected = [step(rule, whole, e, v, DIMS) for e, v in enumerate(curve, 1)]
    first = StopState()
    got = [step(rule, first, e, v, DIMS) for e, v in enumerate(curve[:3], 1)]
    resumed = StopState(**first.to_dict())
    got += [step(rule, resumed, e, v, DIMS) for e, v in enumerate(curve[3:], 4)]
    assert got == expected and resumed == whole
    assert resumed.lr_scale == pytest.approx(rule.lr_decay)


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"patience": 0}, "train.patience"),
        ({"max_epochs": 3, "patience": 4}, "train.epochs"),
        ({"lr_decay": 0.0}, "train.lr_decay"),
        ({"lr_decay": 1.5}, "train.lr_decay"),
        ({"max_decays": -1}, "train.max_decays"),
        ({"min_gain_bpd": -0.1}, "train.min_gain_bpd"),
    ],
)
def test_a_rule_that_cannot_work_is_one_line_naming_its_key(settings, key):
    rule = make_rule(**{"max_epochs": 50, **settings})
    with pytest.raises(VaebenchError, match=rf"^config key '{key}': [^\n]+$"):
        rule.check()
