import json

import pytest
import torch
from pytorch_metric_learning import losses as pml_losses

from simtune.losses.proxy_anchor_loss import ProxyAnchorLoss


def reference_proxy_anchor(embeddings, proxies, groups, margin, alpha):
    """The paper's equation, one proxy and one embedding at a time: positive term averaged over the
    proxies with a positive in the batch, negative term over all proxies."""
    positive_total, negative_total, proxies_with_positives = 0.0, 0.0, 0
    for p in range(len(proxies)):
        positive_sum, negative_sum, has_positive = 0.0, 0.0, False
        for i in range(len(embeddings)):
            s = torch.dot(embeddings[i], proxies[p]) / (embeddings[i].norm() * proxies[p].norm())
            if groups[i] == p:
                positive_sum = positive_sum + torch.exp(-alpha * (s - margin))
                has_positive = True
            else:
                negative_sum = negative_sum + torch.exp(alpha * (s + margin))
        if has_positive:
            positive_total = positive_total + torch.log(1 + positive_sum)
            proxies_with_positives += 1
        negative_total = negative_total + torch.log(1 + negative_sum)
    return positive_total / proxies_with_positives + negative_total / len(proxies)


def random_batch(seed, batch=10, dim=6, num_groups=5, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch, dim, generator=generator, dtype=dtype, requires_grad=True)
    groups = torch.randint(0, num_groups - 1, (batch,), generator=generator)  # last proxy unused
    return embeddings, groups


@pytest.mark.parametrize("margin, alpha", [(0.1, 32.0), (0.3, 8.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_value_and_gradient_match_brute_force_definition(seed, margin, alpha):
    embeddings, groups = random_batch(seed)
    loss = ProxyAnchorLoss(num_groups=5, embedding_size=6, margin=margin, alpha=alpha).double()
    value = loss(embeddings, groups)
    expected = reference_proxy_anchor(embeddings, loss.proxies, groups, margin, alpha)
    assert value.item() == pytest.approx(expected.item(), abs=1e-5)
    grads = torch.autograd.grad(value, [embeddings, loss.proxies])
    expected_grads = torch.autograd.grad(expected, [embeddings, loss.proxies])
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pytorch_metric_learning(seed):
    # Same conventions: PML's proxies have our layout (num_classes, embedding_size); its DivisorReducer
    # divides the positive term by the proxies with positives and the negative term by all proxies.
    embeddings, groups = random_batch(seed, batch=12, dim=8, num_groups=6, dtype=torch.float32)
    theirs = pml_losses.ProxyAnchorLoss(num_classes=6, embedding_size=8, margin=0.1, alpha=32.0)
    ours = ProxyAnchorLoss(num_groups=6, embedding_size=8, margin=0.1, alpha=32.0)
    ours.proxies.data.copy_(theirs.proxies.data)
    value = ours(embeddings, groups)
    expected = theirs(embeddings, groups)
    assert value.item() == pytest.approx(expected.item(), abs=1e-4)
    grads = torch.autograd.grad(value, [embeddings, ours.proxies])
    expected_grads = torch.autograd.grad(expected, [embeddings, theirs.proxies])
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, atol=1e-4, rtol=0)


@pytest.mark.parametrize("case", ["all_equal", "one_class", "embedding_on_its_proxy", "zero_embedding", "one_sample"])
def test_degenerate_batches_give_finite_loss_and_gradient(case):
    loss = ProxyAnchorLoss(num_groups=3, embedding_size=5)
    groups = torch.tensor([0, 1, 2, 0])
    embeddings = torch.randn(4, 5)
    if case == "all_equal":
        embeddings = torch.ones(4, 5)
    elif case == "one_class":
        groups = torch.zeros(4, dtype=torch.long)
    elif case == "embedding_on_its_proxy":
        embeddings = loss.proxies.detach()[groups].clone()
    elif case == "zero_embedding":
        embeddings[0] = 0.0
    elif case == "one_sample":
        embeddings, groups = embeddings[:1], groups[:1]
    embeddings.requires_grad_(True)
    value = loss(embeddings, groups)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(embeddings.grad).all() and torch.isfinite(loss.proxies.grad).all()


def test_proxies_are_trainable_and_learning_them_lowers_the_loss():
    torch.manual_seed(0)
    loss = ProxyAnchorLoss(num_groups=3, embedding_size=4, alpha=8.0)
    assert [p is loss.proxies for p in loss.trainable_parameters] == [True]
    embeddings, groups = torch.randn(9, 4), torch.tensor([0, 1, 2] * 3)
    optimizer = torch.optim.SGD(loss.trainable_parameters, lr=0.5)
    before = loss(embeddings, groups).item()
    for _ in range(20):
        optimizer.zero_grad()
        loss(embeddings, groups).backward()
        optimizer.step()
    assert loss(embeddings, groups).item() < before


def test_config_round_trips_through_json():
    loss = ProxyAnchorLoss(num_groups=7, embedding_size=3, margin=0.2, alpha=16.0)
    rebuilt = ProxyAnchorLoss(**json.loads(json.dumps(loss.get_config())))
    assert rebuilt.get_config() == loss.get_config()
    rebuilt.load_state_dict(loss.state_dict())
    embeddings, groups = torch.randn(5, 3), torch.tensor([0, 6, 2, 2, 1])
    assert rebuilt(embeddings, groups).item() == pytest.approx(loss(embeddings, groups).item())


def test_bad_input_names_the_input():
    with pytest.raises(ValueError, match="groups must be in"):
        ProxyAnchorLoss(num_groups=3, embedding_size=5)(torch.randn(2, 5), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="alpha"):
        ProxyAnchorLoss(3, 5, alpha=0.0)
