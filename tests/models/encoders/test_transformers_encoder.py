import json
import os
import re
import runpy
import subprocess
import sys
import warnings
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

import simtune
from simtune.data import PairsSimilarityDataLoader, SimilarityPairSample
from simtune.functional.pooling import mean_pool
from simtune.losses import MultipleNegativesRankingLoss
from simtune.models.encoders import MINILM_L6_V2, TransformersTextEncoder, minilm_l6_v2_path
from simtune.models.heads import LinearHead
from simtune.train import TrainableModel

ROOT = Path(__file__).resolve().parents[3]
WORDS = "how do i reset change my password email phone number the a to update remove delete account card".split()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT and a WordPiece tokenizer over a few words, saved as a model folder."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = {token: index for index, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    ).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return folder


def _embed(encoder, texts):
    with torch.inference_mode():
        return encoder.eval()(encoder.get_collate_fn()(texts))


def test_mean_pool_averages_real_tokens_only():
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert torch.equal(mean_pool(states, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 3.0]]))


def test_embeds_texts_and_padding_changes_nothing(tiny_bert):
    encoder = TransformersTextEncoder(tiny_bert)
    assert encoder.embedding_size == 16 and not encoder.trainable
    alone = _embed(encoder, ["reset my password"])
    padded = _embed(encoder, ["reset my password", "how do i change the email to a phone number"])
    assert padded.shape == (2, 16)
    assert torch.allclose(alone[0], padded[0], atol=1e-5)
    assert not torch.allclose(padded[0], padded[1])


def test_the_config_does_not_change_when_the_tokenizer_is_used(tiny_bert):
    """Cache fingerprints and model fingerprints hash the config: using the encoder must not change it."""
    encoder = TransformersTextEncoder(tiny_bert, max_length=7)
    before = encoder.get_config()
    _embed(encoder, ["reset my password", "how do i change the email to a phone number"])
    assert encoder.get_config() == before


def test_texts_are_truncated_to_max_length(tiny_bert):
    batch = TransformersTextEncoder(tiny_bert, max_length=5).get_collate_fn()(["how do i reset my password email"])
    assert batch["input_ids"].shape == (1, 5)


def test_bad_inputs_are_named(tiny_bert, tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        TransformersTextEncoder(tmp_path / "no-such-model")
    collate = TransformersTextEncoder(tiny_bert).get_collate_fn()
    with pytest.raises(TypeError, match="text 1: expected a str, got int"):
        collate(["fine", 3])


def test_config_rebuilds_architecture_and_tokenizer_without_the_folder(tiny_bert):
    encoder = TransformersTextEncoder(tiny_bert, max_length=32)
    config = json.loads(json.dumps(encoder.get_config()))  # JSON-able, as saving requires
    rebuilt = TransformersTextEncoder.from_config(config)
    rebuilt.load_state_dict(encoder.state_dict())
    texts = ["reset my password", "delete the account card"]
    assert torch.equal(encoder.get_collate_fn()(texts)["input_ids"], rebuilt.get_collate_fn()(texts)["input_ids"])
    assert torch.equal(_embed(encoder, texts), _embed(rebuilt, texts))


class PairTuning(TrainableModel):
    def __init__(self, model_dir: str):
        self.model_dir = model_dir
        super().__init__()

    def configure_encoders(self):
        return TransformersTextEncoder(self.model_dir, trainable=True)

    def configure_head(self, input_embedding_size):
        return LinearHead(input_embedding_size, 8)

    def configure_loss(self):
        return MultipleNegativesRankingLoss()

    def configure_optimizers(self):
        return torch.optim.Adam(self.trainable_parameters(), lr=1e-3)


LOAD_AND_EMBED = """
import sys, torch
from simtune.models import SimilarityModel
model = SimilarityModel.load(sys.argv[1])
torch.save(model.encode(sys.argv[3:], to_numpy=False), sys.argv[2])
"""


def test_trains_on_pairs_saves_and_loads_in_a_new_process_with_identical_embeddings(tiny_bert, tmp_path):
    pairs = [
        SimilarityPairSample("reset my password", "change the password"),
        SimilarityPairSample("update my email", "change the email"),
        SimilarityPairSample("remove my phone number", "delete the phone number"),
        SimilarityPairSample("delete my account", "remove the account"),
    ] * 4
    trainable = PairTuning(str(tiny_bert))
    before = {k: v.clone() for k, v in trainable.model.encoders["default"].state_dict().items()}
    trainer = pl.Trainer(
        max_steps=3,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    simtune.fit(trainable, trainer, PairsSimilarityDataLoader(pairs, batch_size=4, shuffle=True))
    after = trainable.model.encoders["default"].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the encoder itself was tuned

    trainable.save_servable(tmp_path / "model")
    texts = ["reset my password", "delete the account card", "how do i update my email"]
    expected = trainable.model.eval().encode(texts, to_numpy=False)
    output = tmp_path / "embeddings.pt"
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    hidden = tiny_bert.with_name(tiny_bert.name + "-moved")
    tiny_bert.rename(hidden)  # the saved model must not need the folder it was built from
    try:
        result = subprocess.run(
            [sys.executable, "-c", LOAD_AND_EMBED, str(tmp_path / "model"), str(output), *texts],
            capture_output=True,
            text=True,
            env=environment,
            timeout=300,
        )
    finally:
        hidden.rename(tiny_bert)
    assert result.returncode == 0, result.stderr[-2000:]
    assert torch.equal(torch.load(output), expected)


@pytest.mark.slow
def test_minilm_matches_sentence_transformers_offline():
    """The packaged all-MiniLM-L6-v2, loaded by name with the hub offline, embeds as sentence-transformers
    does (its pipeline: mean pooling, then L2 normalisation)."""
    from sentence_transformers import SentenceTransformer

    texts = ["How do I reset my password?", "A man is playing a guitar.", "short"]
    encoder = TransformersTextEncoder(MINILM_L6_V2)
    ours = torch.nn.functional.normalize(_embed(encoder, texts), dim=1)
    reference = SentenceTransformer(str(minilm_l6_v2_path()), device="cpu").encode(texts, convert_to_tensor=True)
    assert encoder.embedding_size == 384
    assert torch.allclose(ours, reference.cpu(), atol=1e-5)


@pytest.mark.slow
def test_the_text_documentation_example_improves_held_out_pair_retrieval(tmp_path, monkeypatch):
    """docs/text.md runs as written, with real MiniLM weights and the hub offline."""
    text = (ROOT / "docs" / "text.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)
    assert len(blocks) == 1
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "text_example.py"
    script.write_text(blocks[0])
    namespace = runpy.run_path(str(script))
    before, after = namespace["before"], namespace["after"]
    assert len(namespace["train_pairs"]) == 384 and after["num_queries"] == 64
    assert after["mrr"] > before["mrr"] + 0.15
    assert after["precision_at_1"] > before["precision_at_1"] + 0.15
    assert (tmp_path / "paraphrase_model" / "config.json").is_file()


def test_an_empty_text_is_refused_with_its_position(tiny_bert):
    collate = TransformersTextEncoder(tiny_bert).get_collate_fn()
    with pytest.raises(ValueError, match="text 1 of the batch is empty"):
        collate(["reset my password", "  "])


def test_truncation_is_said_once_not_per_text(tiny_bert, monkeypatch):
    from simtune.models.encoders import transformers_encoder

    monkeypatch.setattr(transformers_encoder, "_TRUNCATION_TOLD", set())
    long_text = "how do i reset change my password email phone number"
    with pytest.warns(UserWarning, match="longer than max_length=4 tokens are cut .*said once") as caught:
        for _ in range(3):  # several batches, and a second collate of the same length
            TransformersTextEncoder(tiny_bert, max_length=4).get_collate_fn()([long_text, "reset"])
    assert len([w for w in caught if "max_length=4" in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TransformersTextEncoder(tiny_bert, max_length=64).get_collate_fn()([long_text])  # fits: nothing said


def test_trainable_layers_tunes_only_the_last_layers_and_survives_a_save(tiny_bert):
    encoder = TransformersTextEncoder(tiny_bert, trainable=True, trainable_layers=1)
    learning = {name for name, parameter in encoder.named_parameters() if parameter.requires_grad}
    assert learning and all(name.startswith("network.encoder.layer.1.") for name in learning)
    encoder.requires_grad_(True)  # as TrainableModel does for a trainable encoder: still only the last layer
    assert {name for name, parameter in encoder.named_parameters() if parameter.requires_grad} == learning
    rebuilt = TransformersTextEncoder.from_config(json.loads(json.dumps(encoder.get_config())))
    assert rebuilt.trainable_layers == 1
    assert {name for name, parameter in rebuilt.named_parameters() if parameter.requires_grad} == learning
    with pytest.raises(ValueError, match="needs trainable=True"):
        TransformersTextEncoder(tiny_bert, trainable_layers=1)
    with pytest.raises(ValueError, match="trainable_layers=3; .* has 2 layers"):
        TransformersTextEncoder(tiny_bert, trainable=True, trainable_layers=3)
