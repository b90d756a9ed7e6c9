import math

import numpy as np
import pytest
import torch

from sevi_lib.core.score import shell_distance
from sevi_lib.nn.loss import score_loss, shell_distances


def test_score_loss_equals_score_function():
    rng = np.random.default_rng(0)
    pred = rng.normal(0, 0.5, (64, 2, 12))
    label = rng.normal(0, 0.5, (64, 2, 12))
    want = shell_distance(pred, label)  # (64, 2), the grader's function
    got = shell_distances(torch.from_numpy(pred), torch.from_numpy(label)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
    loss = score_loss(torch.from_numpy(pred), torch.from_numpy(label))
    assert float(loss) == pytest.approx(want.sum(axis=1).mean(), rel=1e-13)


def test_score_loss_gradient_is_finite_at_a_perfect_match():
    label = torch.randn(4, 2, 12, dtype=torch.float64)
    pred = label.clone()
    pred[0, 1, 0] += 0.1  # one coefficient of one shell off, every other shell exact
    pred.requires_grad_(True)
    loss = score_loss(pred, label)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert pred.grad[1:].abs().max() == 0 and pred.grad[0, 0].abs().max() == 0
    # d/dpred of sqrt(sum w d^2) = w d / dist, averaged over the batch of 4
    w = 2.0 / (4.0 * torch.arange(1, 13, dtype=torch.float64) + 1.0)
    want = torch.zeros(12, dtype=torch.float64)
    want[0] = w[0] * 0.1 / math.sqrt(w[0] * 0.01) / 4
    torch.testing.assert_close(pred.grad[0, 1], want)


def test_score_loss_per_sample_is_what_the_loss_averages():
    pred, label = torch.randn(5, 2, 12, dtype=torch.float64), torch.randn(5, 2, 12, dtype=torch.float64)
    loss, per_sample = score_loss(pred, label, per_sample=True)
    assert torch.equal(loss, score_loss(pred, label)) and torch.equal(per_sample, shell_distances(pred, label).sum(-1))
