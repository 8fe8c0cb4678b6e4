"""Pooling many vectors (token states, feature-map positions) into one."""

from __future__ import annotations

import torch
from torch import Tensor


def mean_pool(states: Tensor, attention_mask: Tensor) -> Tensor:
    """(B, T, D) token states, (B, T) mask -> (B, D): the mean over real tokens, padding excluded."""
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def generalised_mean_pool(activations: Tensor, power: Tensor, eps: float = 1e-6) -> Tensor:
    """(B, N, D) non-negative activations, a scalar ``power`` -> (B, D): ``mean(max(x, eps) ** p) ** (1 / p)``
    over the N positions (GeM pooling, Radenovic et al.; p = 1 is the mean, large p nears the max).

    Always computed in float32. When a gradient is wanted it runs through one hand-written backward: autograd's
    backward of a power with a learned exponent takes a dozen full passes over the (B, N, D) activations, the
    most expensive part of a training step of a small head on a CPU; this one takes four and gives the same
    gradients. Without gradients (inference, ONNX export) it is the plain expression."""
    with torch.autocast(activations.device.type, enabled=False):
        activations, power = activations.float(), power.float()
        if torch.is_grad_enabled() and (activations.requires_grad or power.requires_grad):
            return _GeneralisedMean.apply(activations, power, eps)
        return activations.clamp(min=eps).pow(power).mean(dim=1).pow(1.0 / power)


class _GeneralisedMean(torch.autograd.Function):
    @staticmethod
    def forward(ctx, activations: Tensor, power: Tensor, eps: float) -> Tensor:
        clamped = activations.clamp(min=eps)
        powered = clamped.pow(power)
        mean = powered.mean(dim=1)
        pooled = mean.pow(1.0 / power)
        ctx.eps = eps
        ctx.save_for_backward(clamped, powered, mean, pooled, power)
        return pooled

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        clamped, powered, mean, pooled, power = ctx.saved_tensors
        positions = clamped.shape[1]
        # d pooled / d mean = pooled / (p * mean); each position holds 1/N of the mean.
        grad_mean = grad * pooled / (power * mean) / positions
        grad_activations = grad_power = None
        if ctx.needs_input_grad[0]:
            # d (x ** p) / dx = p * x ** p / x, zero where the clamp held x at eps
            grad_activations = powered / clamped
            grad_activations.mul_((grad_mean * power).unsqueeze(1))
            grad_activations.masked_fill_(clamped <= ctx.eps, 0.0)
        if ctx.needs_input_grad[1]:
            # through x ** p: x ** p * log x; through the outer 1 / p: -pooled * log(mean) / p ** 2
            inner = (grad_mean * torch.xlogy(powered, clamped).sum(dim=1)).sum()
            outer = (grad * pooled * mean.log()).sum() / power.square()
            grad_power = (inner - outer).reshape(power.shape)
        return grad_activations, grad_power, None
