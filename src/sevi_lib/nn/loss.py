"""The training loss: the grader's distance on torch tensors (torch).

``shell_distances(pred, label)`` -> tensor ``(B, n_shells)`` of per-shell distances
    ``sqrt(sum_i 2/(4i+1) (pred - label)^2)`` (:func:`sevi_lib.core.score.shell_distance` on the
    same numbers), with a zero (not NaN) gradient where a shell is matched exactly.
``score_loss(pred, label, per_sample=False)``
    Mean over the batch of the per-sample distance summed over shells (the training loop's loss;
    ``per_sample=True`` also returns the per-sample distances).
"""

from __future__ import annotations

import torch

from sevi_lib.core.angular import distance_weights


def shell_distances(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Per-shell distance ``sqrt(sum_i 2/(4i+1) (pred - label)^2)``.

    Parameters
    ----------
    pred, label : Tensor, shape (B, n_shells, N)
        ``label`` is cast to ``pred``'s dtype.

    Returns
    -------
    Tensor, shape (B, n_shells)
        Differentiable; the gradient is 0 (not NaN) where pred == label exactly.
    """
    label = label.to(dtype=pred.dtype, device=pred.device)
    w = torch.as_tensor(distance_weights(pred.shape[-1]), dtype=pred.dtype, device=pred.device)
    sq = ((pred - label) ** 2 * w).sum(dim=-1)
    positive = sq > 0
    safe = torch.where(positive, sq, torch.ones_like(sq))
    return torch.where(positive, torch.sqrt(safe), torch.zeros_like(sq))


def score_loss(pred: torch.Tensor, label: torch.Tensor, per_sample: bool = False):
    """The score as loss: mean over the batch of the sum over shells of the shell distance.

    Parameters
    ----------
    pred, label : Tensor, shape (B, n_shells, N)
    per_sample : bool
        Also return the per-sample distances (summed over shells) the mean is taken of.

    Returns
    -------
    Tensor, scalar
        The loss; with `per_sample`, the tuple ``(loss, distances (B,))``.
    """
    distances = shell_distances(pred, label).sum(dim=-1)
    loss = distances.mean()
    return (loss, distances) if per_sample else loss
