"""A trial's TensorBoard run: each call's scalars in one event, read back with TensorBoard's own reader."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from pytorch_lightning.core.saving import load_hparams_from_yaml, save_hparams_to_yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from hpo.train.tensorboard import TrialLogger


def test_each_calls_scalars_are_one_event_that_tensorboard_reads_per_tag(tmp_path: Path) -> None:
    logger = TrialLogger(save_dir=str(tmp_path), name="", version="trial_0000", default_hp_metric=False)
    for epoch in range(3):
        logger.log_metrics({"val/auroc": 0.5 + epoch / 10, "hp/loss": torch.tensor(1.0 / (epoch + 1))}, step=epoch)
    logger.log_metrics({"hp_metric": 0.7}, step=3)
    logger.finalize("success")
    reader = EventAccumulator(str(tmp_path / "trial_0000"))
    reader.Reload()
    assert sorted(reader.Tags()["scalars"]) == ["hp/loss", "hp_metric", "val/auroc"]
    assert [(e.step, round(e.value, 6)) for e in reader.Scalars("val/auroc")] == [(0, 0.5), (1, 0.6), (2, 0.7)]
    assert [(e.step, round(e.value, 6)) for e in reader.Scalars("hp/loss")] == [(0, 1.0), (1, 0.5), (2, 0.333333)]
    assert [e.step for e in reader.Scalars("hp_metric")] == [3]
    scalar_events = 0
    for path in (tmp_path / "trial_0000").glob("events.out.tfevents.*"):
        scalar_events += sum(1 for e in EventFileLoader(str(path)).Load() if e.summary.value)
    assert scalar_events == 4  # one event per call, not one per scalar


def test_hparams_yaml_is_what_lightning_writes_and_reads(tmp_path: Path) -> None:
    params = {
        "lr": 1e-05,
        "n_layers": 2,
        "dropout": 0.0,
        "optimizer": "adamw",
        "model.embedding": "periodic",
        "x": True,
    }
    logger = TrialLogger(save_dir=str(tmp_path), name="", version="trial_0001", default_hp_metric=False)
    logger.log_hyperparams(params)
    logger.save()
    logger.log_hyperparams({"late": 1})  # written once, as Lightning's: the file exists
    logger.finalize("success")
    ours = tmp_path / "trial_0001" / "hparams.yaml"
    save_hparams_to_yaml(tmp_path / "lightning.yaml", params)
    assert ours.read_text() == (tmp_path / "lightning.yaml").read_text()
    assert load_hparams_from_yaml(str(ours)) == params == yaml.safe_load(ours.read_text())
