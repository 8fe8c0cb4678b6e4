import pickle
from collections import Counter

import pytest

from simtune.data import ClassBalancedBatchSampler

LABELS = [label for label in range(10) for _ in range(label % 4 + 2)] + [10, 11]  # sizes 2..5, two singletons


def label_batches(sampler):
    return [[LABELS[i] for i in batch] for batch in sampler]


def test_every_batch_holds_p_classes_times_k_samples():
    with pytest.warns(UserWarning, match="skips 2 classes with a single sample"):
        sampler = ClassBalancedBatchSampler(LABELS, classes_per_batch=3, samples_per_class=4, batches_per_epoch=50)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 50
    for batch, labels in zip(batches, label_batches(sampler)):
        counts = Counter(labels)
        assert len(batch) == 12 and len(counts) == 3 and set(counts.values()) == {4}
        assert not {10, 11} & set(counts)


def test_small_classes_give_all_their_samples_then_repeats():
    sampler = ClassBalancedBatchSampler(
        [0, 0, 1, 1, 1, 2, 2, 2, 2, 2], classes_per_batch=3, samples_per_class=4, batches_per_epoch=5
    )
    for batch in sampler:
        assert {0, 1} <= set(batch) and {2, 3, 4} <= set(batch)  # every sample of the classes below K
        assert len(set(batch) & {5, 6, 7, 8, 9}) == 4  # a large class draws without replacement


def test_deterministic_per_seed_and_epoch():
    def make(seed):
        return ClassBalancedBatchSampler(LABELS[:-2], 3, 2, batches_per_epoch=20, seed=seed)

    first, again, other_seed = make(0), make(0), make(1)
    epoch0, epoch1 = list(first), list(first)  # each pass moves to the next epoch
    assert epoch0 != epoch1
    assert list(again) == epoch0 and list(again) == epoch1
    again.set_epoch(1)
    assert list(again) == epoch1
    assert list(other_seed) != epoch0


def test_any_epoch_length_visits_classes_evenly():
    sampler = ClassBalancedBatchSampler(LABELS[:-2], classes_per_batch=4, samples_per_class=2, batches_per_epoch=250)
    visits = Counter(label for labels in label_batches(sampler) for label in set(labels))
    assert set(visits) == set(range(10)) and max(visits.values()) - min(visits.values()) <= 1


def test_default_epoch_covers_the_usable_samples_once():
    sampler = ClassBalancedBatchSampler(LABELS[:-2], classes_per_batch=2, samples_per_class=2)
    assert len(sampler) == len(LABELS[:-2]) // 4 == len(list(sampler))


def test_picklable_for_worker_processes():
    sampler = ClassBalancedBatchSampler(LABELS[:-2], 2, 2, seed=3)
    assert list(pickle.loads(pickle.dumps(sampler))) == list(sampler)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"classes_per_batch": 11, "samples_per_class": 2}, "only 10 classes"),
        ({"classes_per_batch": 2, "samples_per_class": 1}, "samples_per_class must be >= 2"),
        ({"classes_per_batch": 1, "samples_per_class": 2}, "classes_per_batch must be >= 2"),
        ({"classes_per_batch": 2, "samples_per_class": 2, "batches_per_epoch": 0}, "batches_per_epoch"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassBalancedBatchSampler(LABELS[:-2], **kwargs)


def test_processes_draw_disjoint_shares_of_one_global_batch():
    def make(**kwargs):
        return ClassBalancedBatchSampler(LABELS[:-2], samples_per_class=2, seed=5, **kwargs)

    ranks = [make(classes_per_batch=2, num_replicas=3, rank=rank) for rank in range(3)]
    single = make(classes_per_batch=6)
    assert [len(sampler) for sampler in ranks] == [len(LABELS[:-2]) // 12] * 3  # about one pass, all processes
    for epoch in range(2):
        for sampler in [*ranks, single]:
            sampler.set_epoch(epoch)
        per_rank = [list(sampler) for sampler in ranks]
        for step, global_batch in enumerate(list(single)[: len(ranks[0])]):
            shares = [batches[step] for batches in per_rank]
            assert sum(shares, []) == global_batch  # together: the one-process batch with 3x the classes
            labels = [{LABELS[i] for i in share} for share in shares]
            assert all(len(share_labels) == 2 for share_labels in labels)
            assert not (labels[0] & labels[1] or labels[0] & labels[2] or labels[1] & labels[2])


def test_too_many_processes_for_the_classes_is_named():
    sampler = ClassBalancedBatchSampler(LABELS[:-2], 4, 2, num_replicas=3, rank=0)
    with pytest.raises(ValueError, match="classes_per_batch=4 on 3 processes needs 12 classes"):
        next(iter(sampler))


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"num_replicas": 2}, "pass both"), ({"num_replicas": 2, "rank": 2}, "rank must be")]
)
def test_bad_replicas_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassBalancedBatchSampler(LABELS[:-2], 2, 2, **kwargs)
