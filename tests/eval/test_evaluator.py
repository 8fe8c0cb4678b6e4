import pytest
import torch

import simtune
from simtune.data.samples import SimilarityGroupSample, SimilarityPairSample
from simtune.eval import (
    Evaluator,
    GroupSampler,
    MeanAveragePrecisionAtR,
    MeanReciprocalRank,
    NDCGAtK,
    PairSampler,
    PrecisionAtK,
    RecallAtK,
    RetrievalRPrecision,
    evaluate,
)

EVERY_METRIC = [
    RetrievalRPrecision(),
    MeanAveragePrecisionAtR(),
    PrecisionAtK(1),
    PrecisionAtK(5),
    RecallAtK(10),
    MeanReciprocalRank(),
    NDCGAtK(10),
]
NAMES = [metric.name for metric in EVERY_METRIC]


@pytest.fixture
def separable_dataset(lookup_model):
    return lambda **options: make_separable_dataset(lookup_model, **options)


def make_separable_dataset(lookup_model, num_groups=6, per_group=8, noise=0.05, seed=0):
    """Groups around orthogonal directions: every same-group item is closer than any other."""
    generator = torch.Generator().manual_seed(seed)
    samples, vectors = [], {}
    for group in range(num_groups):
        for i in range(per_group):
            name = f"img_{group}_{i}.jpg"
            vectors[name] = torch.nn.functional.one_hot(torch.tensor(group), num_groups).float() + noise * torch.rand(
                num_groups, generator=generator
            )
            samples.append(SimilarityGroupSample(obj=name, group=group))
    return samples, lookup_model(lambda name: vectors[name].numpy())


@pytest.mark.parametrize("sampler", [GroupSampler(), GroupSampler(sample_size=10, seed=3)])
def test_perfectly_separable_data_scores_exactly_one_on_every_metric(sampler, separable_dataset):
    dataset, model = separable_dataset()
    result = simtune.evaluate(Evaluator(EVERY_METRIC, sampler), dataset, model)
    assert {name: result[name] for name in NAMES} == {name: 1.0 for name in NAMES}
    assert result["num_queries"] == (48 if sampler.sample_size == -1 else 10)
    assert result["num_queries_without_relevant"] == 0


def test_identical_embeddings_within_groups_still_score_one(separable_dataset, lookup_model):
    # Exact ties everywhere: the query's own copy is excluded by index, never by distance.
    dataset, _ = separable_dataset(noise=0.0)
    model = lookup_model(
        lambda name: torch.nn.functional.one_hot(torch.tensor(int(name.split("_")[1])), 6).float().numpy()
    )
    result = evaluate(Evaluator(EVERY_METRIC, GroupSampler(sample_size=5, seed=1)), dataset, model)
    assert [result[name] for name in NAMES] == [1.0] * len(NAMES)


def test_encodes_every_object_once_with_a_progress_bar(separable_dataset):
    dataset, model = separable_dataset()
    evaluate(Evaluator([PrecisionAtK(1)], GroupSampler(sample_size=4), batch_size=7), dataset, model)
    assert model.calls == [dict(count=48, batch_size=7, progress=True)]


def test_queries_without_relevant_items_are_counted_and_excluded(separable_dataset):
    dataset, model = separable_dataset()
    dataset.append(SimilarityGroupSample(obj="img_0_0.jpg", group=42))  # alone in its group
    result = evaluate(Evaluator([PrecisionAtK(1)]), dataset, model)
    assert result["num_queries"] == 49 and result["num_queries_without_relevant"] == 1
    assert result["precision_at_1"] == pytest.approx(47 / 48)  # the duplicate steals one top result


def test_separate_gallery_and_per_class_results(separable_dataset):
    dataset, model = separable_dataset()
    queries, gallery = dataset[::8], [s for i, s in enumerate(dataset) if i % 8]
    evaluator = Evaluator([PrecisionAtK(1), RetrievalRPrecision()], per_class=True)
    result = evaluate(evaluator, queries, model, gallery_dataset=gallery)
    assert result["num_queries"] == 6 and result["r_precision"] == 1.0
    assert {key for key in result if "/class_" in key} == {
        f"{m}/class_{g}" for m in ("precision_at_1", "r_precision") for g in range(6)
    }


def test_pair_evaluation_precision_and_reciprocal_rank(lookup_model):
    points = {"a": [0.0], "b": [1.0], "c": [3.0], "d": [3.5], "e": [10.0]}
    pairs = [
        SimilarityPairSample("a", "c"),  # for a: b then c -> rank 2
        SimilarityPairSample("d", "c"),  # nearest of each other -> rank 1
        SimilarityPairSample("b", "e", score=0.0),  # a negative pair: not relevant
    ]
    result = evaluate(
        Evaluator([PrecisionAtK(1), MeanReciprocalRank()], PairSampler(), distance="euclidean"),
        pairs,
        lookup_model(lambda name: points[name]),
    )
    # queries a, b, c, d, e; b and e have no positive pair
    assert result["num_queries"] == 5 and result["num_queries_without_relevant"] == 2
    # c: d (0.5) first, relevant; its other pair a at rank 3; precision_at_1 = 1 for c and d
    assert result["precision_at_1"] == pytest.approx((0 + 1 + 1) / 3)
    assert result["mrr"] == pytest.approx((1 / 2 + 1 + 1) / 3)


def test_evaluator_rejects_duplicate_or_foreign_metrics():
    with pytest.raises(ValueError, match="distinct names"):
        Evaluator([PrecisionAtK(1), PrecisionAtK(1)])
    with pytest.raises(ValueError, match="distinct names"):
        Evaluator(["precision_at_1", PrecisionAtK(1)])
    with pytest.raises(TypeError, match="a registered name .* or a RetrievalMetric"):
        Evaluator([len])
    with pytest.raises(ValueError, match="unknown metric 'precision_at_0'"):
        Evaluator(["precision_at_0"])


def test_a_metric_name_and_its_class_give_the_same_result(separable_dataset):
    dataset, model = separable_dataset()
    by_name = evaluate(Evaluator(["mrr", "precision_at_1"]), dataset, model)
    by_class = evaluate(Evaluator([MeanReciprocalRank(), PrecisionAtK(1)]), dataset, model)
    assert by_name == by_class


def test_wrong_sample_type_is_named(lookup_model):
    with pytest.raises(TypeError, match="SimilarityGroupSample items, got SimilarityPairSample"):
        evaluate(Evaluator([PrecisionAtK(1)]), [SimilarityPairSample("a", "b")], lookup_model(lambda o: [0.0]))


def test_quaterion_single_metric_and_dict_forms(separable_dataset):
    dataset, model = separable_dataset()
    single = evaluate(Evaluator(metrics=RetrievalRPrecision(), sampler=GroupSampler(sample_size=1000)), dataset, model)
    assert single["r_precision"] == 1.0 and single["num_queries"] == 48
    named = evaluate(Evaluator({"rrp": RetrievalRPrecision(), "p1": PrecisionAtK(1)}, GroupSampler()), dataset, model)
    assert named["rrp"] == 1.0 and named["p1"] == 1.0 and "r_precision" not in named
    per_class = evaluate(Evaluator({"rrp": RetrievalRPrecision()}, per_class=True), dataset, model)
    assert per_class["rrp/class_0"] == 1.0


def test_quaterion_sampler_arguments_drive_encoding_and_ranking(separable_dataset):
    dataset, model = separable_dataset()
    sampler = GroupSampler(sample_size=1000, encode_batch_size=5, device="cpu", log_progress=False)
    evaluator = Evaluator(RetrievalRPrecision(), sampler)
    assert evaluator.batch_size == 5 and evaluator.device == "cpu"
    evaluate(evaluator, dataset, model)
    assert model.calls == [dict(count=48, batch_size=5, progress=False)]
    assert Evaluator(RetrievalRPrecision(), sampler, batch_size=9).batch_size == 9
    assert PairSampler(3, False, 4, None, False).encode_batch_size == 4  # Quaterion's positional order
    with pytest.raises(ValueError, match="distinguish=True .* not supported"):
        PairSampler(3, True)
    with pytest.raises(ValueError, match="encode_batch_size"):
        GroupSampler(encode_batch_size=0)


def test_dataset_and_model_are_told_apart_by_type(separable_dataset):
    dataset, model = separable_dataset()
    evaluator = Evaluator(RetrievalRPrecision())
    assert evaluate(evaluator, model, dataset) == evaluate(evaluator, dataset, model)  # Quaterion users' slip
    assert evaluate(evaluator, dataset=dataset, model=model)["r_precision"] == 1.0  # Quaterion.evaluate's keywords
    assert evaluator.evaluate(model, dataset)["r_precision"] == 1.0
    with pytest.raises(TypeError, match="model must be a SimilarityModel.*evaluate\\(evaluator, dataset, model\\)"):
        evaluate(evaluator, dataset, dataset)

    trainable = type("Trainable", (), {"model": model})()  # like a TrainableModel: the servable model is .model
    with pytest.raises(TypeError, match="pass trainable_model.model"):
        evaluate(evaluator, dataset, trainable)
    with pytest.raises(TypeError, match="evaluator must be an Evaluator"):
        evaluate(dataset, evaluator, model)


def test_a_dataset_of_transformed_tensors_is_refused_saying_the_encoder_preprocesses():
    from simtune.models import SimilarityModel
    from simtune.models.encoders import EfficientNetLiteEncoder
    from simtune.models.heads import EmptyHead

    model = SimilarityModel(EfficientNetLiteEncoder("lite0", pretrained=False), EmptyHead(1280))
    dataset = [
        SimilarityGroupSample(obj=torch.zeros(3, 336, 336), group=i % 2) for i in range(4)
    ]  # Quaterion's CarsDataset
    with pytest.raises(TypeError, match="already transformed Tensor.*encoders do their own preprocessing"):
        evaluate(Evaluator(RetrievalRPrecision(), GroupSampler(sample_size=1000, log_progress=False)), dataset, model)
