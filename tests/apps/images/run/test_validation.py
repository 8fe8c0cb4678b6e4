import torch
from torch import nn

from simtune.apps.images.run.validation import head_outputs, head_scorer, retrieval_scores


def test_scores_are_leave_one_out_retrieval_named_by_prefix():
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    separable = torch.eye(3)[groups] + 0.01 * torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    scores = retrieval_scores(separable, groups, "validation")
    assert scores == {"validation_r_precision": 1.0, "validation_map_at_r": 1.0, "validation_precision_at_1": 1.0}
    swapped = separable[[0, 2, 1, 3, 4, 5]]  # two images trade places: their classes no longer cluster
    assert retrieval_scores(swapped, groups, "unseen")["unseen_r_precision"] < 1.0


def test_the_head_is_scored_in_eval_mode_and_left_as_it_was():
    head = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.9))
    inputs = torch.randn(10, 4)
    head.train()
    out = head_outputs(head, inputs, batch_size=3)
    assert head.training  # restored
    with torch.no_grad():
        assert torch.allclose(out, head.eval()(inputs), atol=1e-6)  # dropout was off: eval mode
    score = head_scorer(inputs, torch.tensor([0, 1] * 5))
    assert set(score(head)) == {"validation_r_precision", "validation_map_at_r", "validation_precision_at_1"}
