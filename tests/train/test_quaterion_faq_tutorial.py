"""A miniature of Quaterion's second tutorial (cloud FAQ question/answer pairs), ported by changing its imports,
its encoder line and its Trainer line: frozen all-MiniLM-L6-v2, SkipConnectionHead, symmetric MNRL, the
tutorial's attached pair metrics every epoch, PairSampler evaluation, save, and a load in a new process."""

import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.optim import Adam
from torch.utils.data import Dataset

from simtune import SimilarityModel, TrainableModel, evaluate, fit  # was: quaterion (Quaterion.fit, .evaluate)
from simtune.data import PairsSimilarityDataLoader, SimilarityPairSample  # was: quaterion.dataset
from simtune.eval import Evaluator, RetrievalPrecision, RetrievalReciprocalRank  # was: quaterion.eval.pair, .evaluator
from simtune.eval.attached_metric import AttachedMetric  # the same path as Quaterion's
from simtune.eval.samplers.pair_sampler import PairSampler  # the same path as Quaterion's
from simtune.losses import MultipleNegativesRankingLoss  # was: quaterion.loss
from simtune.models.encoders import MINILM_L6_V2, TransformersTextEncoder
from simtune.models.heads.skip_connection_head import SkipConnectionHead  # was: quaterion_models.heads...
from simtune.train import CacheConfig, CacheType  # was: quaterion.train.cache

ROOT = Path(__file__).resolve().parents[2]
FAQ = [
    ("what is amazon ec2?", "a web service that provides resizable compute capacity in the cloud"),
    ("how am i charged for ec2 instances?", "you pay only for the compute time you use, by the second"),
    ("can i change the instance type of a running instance?", "stop the instance, change its type, start it again"),
    ("what is a security group?", "a virtual firewall that controls traffic to your instances"),
    ("how many elastic ip addresses can i have?", "five per region, and you can ask for more"),
    ("what is amazon s3?", "object storage built to store and retrieve any amount of data"),
    ("how durable is s3?", "it is designed for eleven nines of durability over a year"),
    ("can i host a static website on s3?", "yes, a bucket can serve a static website"),
    ("what is glacier used for?", "low-cost archival storage for data you rarely read"),
    ("how long does a glacier retrieval take?", "standard retrievals finish within three to five hours"),
    ("what is a vpc?", "a logically isolated section of the cloud where you launch resources"),
    ("can i connect my vpc to my office network?", "yes, through a vpn connection or direct connect"),
    ("what is aws lambda?", "a service that runs your code without provisioning servers"),
    ("how long can a lambda function run?", "up to fifteen minutes per invocation"),
    ("which languages does lambda support?", "node.js, python, java, go, ruby and .net among others"),
    ("what is amazon rds?", "a managed relational database service"),
    ("which database engines does rds offer?", "mysql, postgresql, mariadb, oracle and sql server"),
    ("does rds make backups?", "automated backups are kept for a retention period you choose"),
    ("what is route 53?", "a scalable domain name system web service"),
    ("can route 53 check the health of my servers?", "yes, health checks route traffic away from failures"),
    ("what is cloudfront?", "a content delivery network that caches content near viewers"),
    ("what is sns?", "a publish and subscribe messaging service for notifications"),
    ("what is sqs?", "a managed message queue that decouples components"),
    ("how do i stop paying for an instance?", "terminate it; stopped instances still pay for storage"),
]


class FAQDataset(Dataset):  # the tutorial's, reading a list instead of its JSONL file
    def __init__(self, rows):
        self.rows = rows

    def __getitem__(self, index):
        question, answer = self.rows[index]
        return SimilarityPairSample(obj_a=question, obj_b=answer, score=1.0, subgroup=0)

    def __len__(self):
        return len(self.rows)


class FAQModel(TrainableModel):
    def __init__(self, lr=10e-5, *args, **kwargs):
        self.lr = lr
        super().__init__(*args, **kwargs)

    def configure_metrics(self):
        return [
            AttachedMetric("RetrievalPrecision", RetrievalPrecision(k=1), prog_bar=True, on_epoch=True),
            AttachedMetric("RetrievalReciprocalRank", RetrievalReciprocalRank(), prog_bar=True, on_epoch=True),
        ]

    def configure_optimizers(self):
        return Adam(self.model.parameters(), lr=self.lr)

    def configure_loss(self):
        # changed: Quaterion's cosine is (cos + 1) / 2, so its default scale=20 is simtune's 10
        return MultipleNegativesRankingLoss.quaterion(symmetric=True)

    def configure_encoders(self):
        # changed: a sentence-transformers Transformer + Pooling encoder is TransformersTextEncoder, which saves
        return TransformersTextEncoder(MINILM_L6_V2)

    def configure_head(self, input_embedding_size: int):
        return SkipConnectionHead(input_embedding_size, skip_dropout=0.1)

    def configure_caches(self):
        return CacheConfig(CacheType.AUTO, batch_size=256)


LOAD_AND_EMBED = """
import sys, torch
from simtune.models import SimilarityModel
model = SimilarityModel.load(sys.argv[1])
torch.save(model.encode(sys.argv[3:], to_numpy=False), sys.argv[2])
"""


@pytest.mark.slow
def test_the_faq_tutorial_ports_logs_pair_metrics_every_epoch_and_serves(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pl.seed_everything(42, workers=True)
    model = FAQModel(lr=1e-2)
    trainer = pl.Trainer(  # changed: Lightning 2 has no gpus= / auto_select_gpus= (accelerator="auto" picks)
        min_epochs=1,
        max_epochs=3,
        log_every_n_steps=1,
        num_sanity_val_steps=2,
        logger=False,
        default_root_dir=tmp_path,
    )
    train_dataset, val_dataset = FAQDataset(FAQ[:16]), FAQDataset(FAQ[16:])
    epochs = []

    class Record(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):  # after the epoch's validation
            epochs.append({key: float(value) for key, value in trainer.callback_metrics.items()})

    trainer.callbacks.append(Record())
    fit(
        model,
        trainer,
        PairsSimilarityDataLoader(train_dataset, batch_size=8, shuffle=True),
        PairsSimilarityDataLoader(val_dataset, batch_size=4),
    )
    assert len(epochs) == 3  # the tutorial's metrics, every epoch
    assert all({"validation_RetrievalPrecision", "validation_RetrievalReciprocalRank"} <= set(e) for e in epochs)

    # Over the whole validation set, as Quaterion.evaluate with the tutorial's evaluator computes them
    evaluator = Evaluator({"rrk": RetrievalReciprocalRank(), "rp@1": RetrievalPrecision(k=1)}, PairSampler())
    results = evaluate(evaluator, val_dataset, model.model)
    assert results["num_queries"] == 16  # 8 questions and 8 answers, each querying the 15 others
    assert results["rrk"] == pytest.approx(epochs[-1]["validation_RetrievalReciprocalRank"], abs=0.02)
    assert results["rp@1"] == pytest.approx(epochs[-1]["validation_RetrievalPrecision"], abs=0.07)
    assert results["rrk"] > 0.5

    model.save_servable(tmp_path / "servable")
    texts = ["what is amazon ec2?", "how durable is s3?", "which languages does lambda support?"]
    expected = SimilarityModel.load(tmp_path / "servable").encode(texts, to_numpy=False)
    assert torch.allclose(expected, model.model.eval().encode(texts, to_numpy=False), atol=1e-6)
    output = tmp_path / "embeddings.pt"
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_EMBED, str(tmp_path / "servable"), str(output), *texts],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert torch.equal(torch.load(output), expected)
