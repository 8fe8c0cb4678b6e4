import json
import math

import pytest
import torch
from pytorch_metric_learning import losses as pml_losses

from simtune.losses.arcface_loss import ArcFaceLoss


def reference_arcface(embeddings, weight, groups, margin, scale):
    """The definition, one embedding and one class at a time: softmax cross-entropy over
    scale*cos(theta_c), with the true class's angle widened to theta + margin (continued linearly as
    cos(theta) - margin*sin(margin) once theta + margin would pass pi)."""
    total = 0.0
    for i in range(len(embeddings)):
        logits = []
        for c in range(len(weight)):
            cos = torch.dot(embeddings[i], weight[c]) / (embeddings[i].norm() * weight[c].norm())
            if c == groups[i]:
                theta = torch.acos(cos)
                if theta + margin <= math.pi:
                    cos = torch.cos(theta + margin)
                else:
                    cos = cos - margin * math.sin(margin)
            logits.append(scale * cos)
        log_normaliser = torch.log(sum(torch.exp(logit) for logit in logits))
        total = total - (logits[groups[i]] - log_normaliser)
    return total / len(embeddings)


def random_batch(seed, batch=10, dim=6, num_groups=4, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch, dim, generator=generator, dtype=dtype, requires_grad=True)
    groups = torch.randint(0, num_groups, (batch,), generator=generator)
    return embeddings, groups


WEIGHT_SEED = 1  # class weights drawn the same whatever ran before (see the guard below)


@pytest.mark.parametrize("margin", [0.5, 2.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_value_and_gradient_match_brute_force_definition(seed, margin):
    embeddings, groups = random_batch(seed)
    torch.manual_seed(WEIGHT_SEED)
    loss = ArcFaceLoss(num_groups=4, embedding_size=6, margin=margin, scale=8.0).double()
    value = loss(embeddings, groups)
    expected = reference_arcface(embeddings, loss.weight, groups, margin, 8.0)
    assert value.item() == pytest.approx(expected.item(), abs=1e-5)
    grads = torch.autograd.grad(value, [embeddings, loss.weight])
    expected_grads = torch.autograd.grad(expected, [embeddings, loss.weight])
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_margin_two_radians_exercises_both_branches(seed):
    # Guards the test above: with margin 2.0 some true-class angles pass pi - margin, some do not.
    embeddings, groups = random_batch(seed)
    torch.manual_seed(WEIGHT_SEED)
    loss = ArcFaceLoss(4, 6, margin=2.0).double()
    cos = torch.nn.functional.cosine_similarity(embeddings, loss.weight[groups]).detach()
    assert (cos >= -math.cos(2.0)).any() and (cos < -math.cos(2.0)).any()


def test_matches_pytorch_metric_learning():
    # Mapping: PML's margin is in degrees (ours radians); PML's W is (embedding_size, num_classes),
    # ours (num_groups, embedding_size); both average the per-sample cross-entropy.
    embeddings, groups = random_batch(3, batch=12, dim=8, num_groups=5, dtype=torch.float32)
    theirs = pml_losses.ArcFaceLoss(num_classes=5, embedding_size=8, margin=math.degrees(0.5), scale=30.0)
    ours = ArcFaceLoss(num_groups=5, embedding_size=8, margin=0.5, scale=30.0)
    ours.weight.data.copy_(theirs.W.data.T)
    value = ours(embeddings, groups)
    expected = theirs(embeddings, groups)
    assert value.item() == pytest.approx(expected.item(), abs=1e-4)
    grad = torch.autograd.grad(value, embeddings)[0]
    expected_grad = torch.autograd.grad(expected, embeddings)[0]
    torch.testing.assert_close(grad, expected_grad, atol=1e-4, rtol=0)


@pytest.mark.parametrize("case", ["all_equal", "one_class", "embedding_on_its_class_weight", "zero_embedding"])
def test_degenerate_batches_give_finite_loss_and_gradient(case):
    loss = ArcFaceLoss(num_groups=3, embedding_size=5)
    groups = torch.tensor([0, 1, 2, 0])
    embeddings = torch.randn(4, 5)
    if case == "all_equal":
        embeddings = torch.ones(4, 5)
    elif case == "one_class":
        groups = torch.zeros(4, dtype=torch.long)
    elif case == "embedding_on_its_class_weight":
        embeddings = loss.weight.detach()[groups].clone()
    elif case == "zero_embedding":
        embeddings[0] = 0.0
    embeddings.requires_grad_(True)
    value = loss(embeddings, groups)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(embeddings.grad).all() and torch.isfinite(loss.weight.grad).all()


def test_config_round_trips_through_json():
    loss = ArcFaceLoss(num_groups=7, embedding_size=3, margin=0.3, scale=16.0)
    rebuilt = ArcFaceLoss(**json.loads(json.dumps(loss.get_config())))
    assert rebuilt.get_config() == loss.get_config()
    rebuilt.load_state_dict(loss.state_dict())
    embeddings, groups = torch.randn(5, 3), torch.tensor([0, 6, 2, 2, 1])
    assert rebuilt(embeddings, groups).item() == pytest.approx(loss(embeddings, groups).item())


def test_class_weights_are_trainable_and_learning_them_lowers_the_loss():
    torch.manual_seed(0)
    loss = ArcFaceLoss(num_groups=3, embedding_size=4, margin=0.2, scale=8.0)
    assert [p is loss.weight for p in loss.trainable_parameters] == [True]
    embeddings, groups = torch.randn(9, 4), torch.tensor([0, 1, 2] * 3)
    optimizer = torch.optim.SGD(loss.trainable_parameters, lr=0.5)
    before = loss(embeddings, groups).item()
    for _ in range(20):
        optimizer.zero_grad()
        loss(embeddings, groups).backward()
        optimizer.step()
    assert loss(embeddings, groups).item() < before


@pytest.mark.parametrize(
    "embeddings, groups, message",
    [
        (torch.randn(4, 5), torch.tensor([0, 1, 3, 0]), "groups must be in"),
        (torch.randn(4, 6), torch.tensor([0, 1, 2, 0]), "embedding_size=5"),
        (torch.randn(4, 5), torch.tensor([0, 1, 0]), r"groups must be \(batch,\)"),
        (torch.randn(4, 5), torch.tensor([0.0, 1.0, 0.0, 1.0]), "integer"),
        (torch.randn(4), torch.tensor([0, 1, 0, 1]), r"embeddings must be \(batch, dim\)"),
    ],
)
def test_bad_input_names_the_input(embeddings, groups, message):
    with pytest.raises(ValueError, match=message):
        ArcFaceLoss(num_groups=3, embedding_size=5)(embeddings, groups)


def test_bad_hyperparameters_are_rejected():
    with pytest.raises(ValueError, match="margin"):
        ArcFaceLoss(3, 5, margin=28.6)  # degrees by mistake
    with pytest.raises(ValueError, match="scale"):
        ArcFaceLoss(3, 5, scale=0.0)
    with pytest.raises(ValueError, match="num_groups"):
        ArcFaceLoss(0, 5)
