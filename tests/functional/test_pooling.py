import pytest
import torch

from simtune.functional.pooling import generalised_mean_pool


def plain_gem(activations, power, eps=1e-6):
    return activations.clamp(min=eps).pow(power).mean(dim=1).pow(1.0 / power)


def relu_like(*shape, dtype=torch.float32, seed=0):
    """Non-negative activations with exact zeros, as a ReLU6 leaves them."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=generator, dtype=dtype) * 2).clamp(0, 6)


def test_gradients_match_finite_differences():
    activations = relu_like(3, 5, 4, dtype=torch.double).requires_grad_()
    power = torch.tensor(2.5, dtype=torch.double, requires_grad=True)
    # float64 in, float32 inside: compare against the plain expression's autograd instead of gradcheck's
    # float64 tolerance.
    pooled = generalised_mean_pool(activations, power)
    pooled.sum().backward()
    reference_activations = activations.detach().float().requires_grad_()
    reference_power = power.detach().float().requires_grad_()
    plain_gem(reference_activations, reference_power).sum().backward()
    assert torch.allclose(activations.grad.float(), reference_activations.grad, rtol=1e-5, atol=1e-7)
    assert torch.allclose(power.grad.float(), reference_power.grad, rtol=1e-5)


@pytest.mark.parametrize("power_value", [1.0, 3.0, 6.5])
def test_training_path_equals_autograd_of_the_plain_expression(power_value):
    activations = relu_like(16, 49, 32, seed=1).requires_grad_()
    power = torch.tensor(power_value, requires_grad=True)
    upstream = torch.randn(16, 32, generator=torch.Generator().manual_seed(2))
    (generalised_mean_pool(activations, power) * upstream).sum().backward()
    expected_activations = activations.detach().clone().requires_grad_()
    expected_power = power.detach().clone().requires_grad_()
    expected = plain_gem(expected_activations, expected_power)
    (expected * upstream).sum().backward()
    assert torch.equal(generalised_mean_pool(activations.detach(), power.detach()), expected.detach())
    assert torch.allclose(activations.grad, expected_activations.grad, rtol=1e-4, atol=1e-7)
    assert torch.allclose(power.grad, expected_power.grad, rtol=1e-4)
    # where the clamp held a zero at eps, no gradient flows back
    assert (activations.grad[activations.detach() == 0] == 0).all()


def test_the_custom_backward_is_a_true_derivative():
    activations = (relu_like(2, 3, 2, dtype=torch.double) + 0.5).requires_grad_()
    power = torch.tensor(3.0, dtype=torch.double, requires_grad=True)
    from simtune.functional.pooling import _GeneralisedMean

    assert torch.autograd.gradcheck(lambda a, p: _GeneralisedMean.apply(a, p, 1e-6), (activations, power))


def test_only_the_wanted_gradient_is_computed():
    activations = relu_like(4, 9, 3).requires_grad_()
    power = torch.tensor(3.0)  # a fixed power
    generalised_mean_pool(activations, power).sum().backward()
    assert activations.grad is not None and torch.isfinite(activations.grad).all()


def test_float32_result_under_autocast():
    activations = relu_like(4, 9, 8).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pooled = generalised_mean_pool(activations, torch.tensor(3.0))
    assert pooled.dtype == torch.float32
    assert torch.allclose(pooled, plain_gem(activations.float(), torch.tensor(3.0)))
