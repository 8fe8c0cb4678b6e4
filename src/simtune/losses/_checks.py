"""Input checks shared by the losses, so bad batches fail with a message naming the input."""

from __future__ import annotations

import torch
from torch import Tensor


def check_group_batch(embeddings: Tensor, groups: Tensor) -> None:
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be (batch, dim), got shape {tuple(embeddings.shape)}")
    if groups.dim() != 1 or len(groups) != len(embeddings):
        raise ValueError(
            f"groups must be (batch,) = ({len(embeddings)},) to match embeddings, got shape {tuple(groups.shape)}"
        )
    if groups.is_floating_point():
        raise ValueError(f"groups must be integer group ids, got dtype {groups.dtype}")


def check_references(
    embeddings: Tensor, groups: Tensor, ref_embeddings: Tensor | None, ref_groups: Tensor | None
) -> Tensor:
    """Check a group batch and its optional references; return the rows anchors are compared with:
    the batch, followed by the references when there are any."""
    check_group_batch(embeddings, groups)
    if ref_embeddings is None and ref_groups is None:
        return embeddings
    if ref_embeddings is None or ref_groups is None:
        raise ValueError("ref_embeddings and ref_groups go together; pass both or neither")
    if ref_embeddings.dim() != 2 or ref_embeddings.shape[1] != embeddings.shape[1]:
        raise ValueError(
            f"ref_embeddings must be (refs, {embeddings.shape[1]}) to match embeddings, "
            f"got shape {tuple(ref_embeddings.shape)}"
        )
    if ref_groups.shape != (len(ref_embeddings),) or ref_groups.is_floating_point():
        raise ValueError(
            f"ref_groups must be integer ids shaped ({len(ref_embeddings)},) to match ref_embeddings, "
            f"got {ref_groups.dtype} of shape {tuple(ref_groups.shape)}"
        )
    return torch.cat([embeddings, ref_embeddings.to(embeddings.dtype)])


def check_pair_batch(embeddings: Tensor, pairs: Tensor, labels: Tensor, subgroups: Tensor) -> None:
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be (rows, dim), got shape {tuple(embeddings.shape)}")
    if pairs.dim() != 2 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must be (num_pairs, 2), got shape {tuple(pairs.shape)}")
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= len(embeddings)):
        raise ValueError(f"pairs index rows outside embeddings (0..{len(embeddings) - 1})")
    if labels.shape != (len(pairs),):
        raise ValueError(f"labels must be (num_pairs,) = ({len(pairs)},), got shape {tuple(labels.shape)}")
    if subgroups.shape != (len(embeddings),):
        raise ValueError(f"subgroups must be (rows,) = ({len(embeddings)},), got shape {tuple(subgroups.shape)}")


def mining_scheme(mining: str, aliases: dict[str, str]) -> str:
    """The scheme ``mining`` names (``aliases`` maps Quaterion's names too: batch_hard is hard), or a ValueError."""
    if mining not in aliases:
        raise ValueError(f"mining must be one of {sorted(aliases)}, got {mining!r}")
    return aliases[mining]


def check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def check_against_parameters(
    embeddings: Tensor, groups: Tensor, num_groups: int, embedding_size: int, loss_name: str
) -> None:
    """Group ids must index the per-group parameters and embeddings must have their width."""
    if embeddings.shape[1] != embedding_size:
        raise ValueError(
            f"embeddings have size {embeddings.shape[1]}, {loss_name} was built for embedding_size={embedding_size}"
        )
    if len(groups) and (groups.min() < 0 or groups.max() >= num_groups):
        raise ValueError(
            f"{loss_name} was built for num_groups={num_groups}; groups must be in [0, {num_groups - 1}], "
            f"got values in [{int(groups.min())}, {int(groups.max())}]"
        )
