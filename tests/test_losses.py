"""The threshold-guard loss and the lambda schedule."""

import math

import pytest
import torch

from tgo.losses import LambdaSchedule, threshold_guard_loss


def test_zero_when_every_potential_is_outside_the_band():
    h = [torch.tensor([0.0, 0.5, 1.5, 2.0]), torch.tensor([[-3.0, 1.6]])]
    loss = threshold_guard_loss(h, v_threshold=1.0, margin=0.5)
    assert loss.item() == 0.0


def test_value_by_hand_summed_over_layers():
    h = [torch.tensor([1.0, 1.2, 2.0]), torch.tensor([0.9])]
    # layer 1: (0.5 + 0.3 + 0) / 3; layer 2: 0.4
    expected = 0.8 / 3 + 0.4
    assert threshold_guard_loss(h, 1.0, 0.5).item() == pytest.approx(expected)
    expected_sq = (0.25 + 0.09) / 3 + 0.16
    assert threshold_guard_loss(h, 1.0, 0.5, squared=True).item() == pytest.approx(expected_sq)


@pytest.mark.parametrize("squared", [False, True])
def test_gradient_pushes_potentials_away_from_threshold(squared):
    h = torch.tensor([0.8, 0.95, 1.05, 1.3, 3.0], requires_grad=True)
    threshold_guard_loss([h], 1.0, 0.5, squared=squared).backward()
    # Gradient descent moves H by -grad: below V_th down, above V_th up, far away not at all.
    step = -h.grad
    assert (step[:2] < 0).all() and (step[2:4] > 0).all() and step[4] == 0


def test_matches_autograd_reference():
    torch.manual_seed(0)
    hs = [(torch.randn(4, 3, 5) * 0.6 + 1).requires_grad_() for _ in range(2)]
    for squared in (False, True):
        ours = threshold_guard_loss(hs, 1.0, 0.4, squared)
        ref = sum((torch.relu(0.4 - (h - 1).abs()) ** (2 if squared else 1)).mean() for h in hs)
        torch.testing.assert_close(ours, ref)
        for a, b in zip(torch.autograd.grad(ours, hs), torch.autograd.grad(ref, hs)):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("margin", [0.0, -0.1])
def test_bad_margin(margin):
    with pytest.raises(ValueError, match="margin"):
        threshold_guard_loss([torch.zeros(2)], 1.0, margin)


def test_no_potentials_is_a_clear_error():
    with pytest.raises(ValueError, match="recording"):
        threshold_guard_loss([], 1.0, 0.5)


def test_cosine_ramp_and_constant_schedule():
    s = LambdaSchedule(0.6, ramp_fraction=0.5)
    assert s(0.0) == 0.0
    assert s(0.25) == pytest.approx(0.3)
    assert s(0.5) == pytest.approx(0.6) and s(0.9) == pytest.approx(0.6)
    values = [s(p / 100) for p in range(101)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert LambdaSchedule(0.6, kind="constant")(0.0) == 0.6
    assert LambdaSchedule(0.4, ramp_fraction=1.0)(0.5) == pytest.approx(0.4 * (1 - math.cos(math.pi / 2)) / 2)


@pytest.mark.parametrize("kwargs, field", [
    (dict(margin_weight=-1), "margin_weight"),
    (dict(margin_weight=0.5, ramp_fraction=0), "ramp_fraction"),
    (dict(margin_weight=0.5, kind="linear"), "lambda_schedule"),
])
def test_bad_schedule(kwargs, field):
    with pytest.raises(ValueError, match=field):
        LambdaSchedule(**kwargs)
