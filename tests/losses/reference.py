"""Brute-force losses written as plain Python loops over their definitions, one pair or triplet at a
time, to check the vectorised, O(B^2) implementations against. Slow on purpose: B <= 12.

Distances are computed here from their formulas, not through simtune.distances, so a bug there
would show up as a mismatch too.
"""

from __future__ import annotations

import math

import torch


def distance(name, x, y):
    if name == "cosine":
        return 1 - torch.dot(x, y) / (x.norm() * y.norm())
    if name == "euclidean":
        return torch.sqrt(((x - y) ** 2).sum())
    if name == "dot_product":
        return -torch.dot(x, y)
    raise ValueError(name)


def similarity(name, x, y):
    if name == "cosine":
        return torch.dot(x, y) / (x.norm() * y.norm())
    if name == "euclidean":
        return 1 / (1 + torch.sqrt(((x - y) ** 2).sum()))
    if name == "dot_product":
        return torch.dot(x, y)
    raise ValueError(name)


def relu(x):
    return x if x > 0 else x * 0


def softplus(x):
    return torch.log1p(torch.exp(x))


def mean(terms):
    """Mean of a list of scalar tensors; an empty list gives 0 (nothing to learn)."""
    return sum(terms) / len(terms) if terms else torch.tensor(0.0, dtype=torch.float64)


def value_and_grad(fn, *tensors):
    """Evaluate ``fn(*tensors)`` and its gradient w.r.t. each tensor, on float64 copies."""
    leaves = [t.detach().double().requires_grad_(True) for t in tensors]
    value = fn(*leaves)
    grads = torch.autograd.grad(value, leaves, allow_unused=True)
    return value.detach(), [torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads)]


def triplet(x, groups, margin, mining, soft, dist):
    """Batch-all: mean over triplets with positive loss. Batch-hard: per anchor with a positive and a
    negative, hardest of each. Semi-hard: per (anchor, positive), the closest negative strictly
    farther than the positive; pairs without one are skipped."""
    n = len(x)
    d = [[distance(dist, x[i], x[j]) for j in range(n)] for i in range(n)]
    terms = []
    for a in range(n):
        positives = [p for p in range(n) if p != a and groups[p] == groups[a]]
        negatives = [k for k in range(n) if groups[k] != groups[a]]
        if mining == "all":
            for p in positives:
                for k in negatives:
                    loss = relu(d[a][p] - d[a][k] + margin)
                    if loss > 0:
                        terms.append(loss)
        elif mining == "hard":
            if positives and negatives:
                d_ap = max((d[a][p] for p in positives), key=lambda t: t.item())
                d_an = min((d[a][k] for k in negatives), key=lambda t: t.item())
                terms.append(softplus(d_ap - d_an) if soft else relu(d_ap - d_an + margin))
        else:
            for p in positives:
                farther = [d[a][k] for k in negatives if d[a][k] > d[a][p]]
                if farther:
                    d_an = min(farther, key=lambda t: t.item())
                    terms.append(softplus(d[a][p] - d_an) if soft else relu(d[a][p] - d_an + margin))
    return mean(terms)


def contrastive(x, pairs, labels, margin, squared, dist):
    power = 2 if squared else 1
    terms = []
    for (i, j), label in zip(pairs.tolist(), labels):
        d = distance(dist, x[i], x[j])
        terms.append(label * d**power + (1 - label) * relu(margin - d) ** power)
    return mean(terms)


def online_contrastive(x, groups, margin, mining, squared, dist):
    """Positive and negative terms averaged separately; "hard" keeps each anchor's farthest positive
    and closest other-group row (never itself)."""
    n, power = len(x), 2 if squared else 1
    positive_terms, negative_terms = [], []
    for a in range(n):
        positives = [distance(dist, x[a], x[p]) for p in range(n) if p != a and groups[p] == groups[a]]
        negatives = [distance(dist, x[a], x[k]) for k in range(n) if groups[k] != groups[a]]
        if mining == "hard":
            positives = [max(positives, key=lambda t: t.item())] if positives else []
            negatives = [min(negatives, key=lambda t: t.item())] if negatives else []
        positive_terms += [d**power for d in positives]
        negative_terms += [relu(margin - d) ** power for d in negatives]
    return mean(positive_terms) + mean(negative_terms)


def multiple_negatives_ranking(x, pairs, subgroups, scale, symmetric, dist):
    """-log softmax of the own partner among all partners, skipping same non-zero subgroup ones."""

    def direction(rows, cols):
        terms = []
        for i in range(len(pairs)):
            logits = []
            for j in range(len(pairs)):
                same = subgroups[rows[i]] == subgroups[cols[j]] != 0
                if j == i or not same:
                    logits.append(scale * similarity(dist, x[rows[i]], x[cols[j]]))
            own = scale * similarity(dist, x[rows[i]], x[cols[i]])
            terms.append(-(own - torch.log(sum(torch.exp(logit) for logit in logits))))
        return mean(terms)

    first, second = pairs[:, 0].tolist(), pairs[:, 1].tolist()
    forward = direction(first, second)
    return (forward + direction(second, first)) / 2 if symmetric else forward


def softmax(x, groups, weight, bias, temperature):
    terms = []
    for i in range(len(x)):
        logits = [(torch.dot(x[i], weight[c]) + bias[c]) / temperature for c in range(len(weight))]
        terms.append(-(logits[groups[i]] - torch.log(sum(torch.exp(logit) for logit in logits))))
    return mean(terms)


def center(x, groups, centers, dist):
    return mean([distance(dist, x[i], centers[groups[i]]) ** 2 / 2 for i in range(len(x))])


def assert_close(actual, expected, tolerance, what):
    difference = (
        (torch.as_tensor(actual, dtype=torch.float64) - torch.as_tensor(expected, dtype=torch.float64)).abs().max()
    )
    assert difference <= tolerance, f"{what}: max |difference| = {float(difference):.3g} > {tolerance}"
    assert math.isfinite(float(difference))
