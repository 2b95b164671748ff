"""What the DataModules share (src/datamodules/base.py): the number of loader processes, and a training
set that fills at least one batch on every process."""

import os
from types import SimpleNamespace

import pytest

from facezoo.datamodules.base import FaceDataModule
from facezoo.datamodules.folders import PlanDataset
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError
from facezoo.utils.instantiate import instantiate


@pytest.mark.parametrize(("cores", "workers"), [(1, 0), (2, 1), (3, 2), (16, 4)])
def test_null_workers_follow_the_cores(monkeypatch, cores, workers):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert FaceDataModule(num_workers=None).num_workers == workers
    assert FaceDataModule(num_workers=3).num_workers == 3  # a number is taken as it is


@pytest.mark.parametrize("datamodule", ["ffhqr", "ffhq"])
def test_the_real_data_sets_default_to_the_cores(tmp_path, monkeypatch, datamodule):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    cfg = compose_config(overrides=[f"datamodule={datamodule}"], output_dir=tmp_path)
    assert cfg.datamodule.num_workers is None
    assert instantiate(cfg.datamodule, "datamodule").num_workers == 1  # 2 cores: not 4 workers


def test_negative_workers_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"datamodule.num_workers=-1: expected"):
        FaceDataModule(num_workers=-1)


@pytest.mark.parametrize(("samples", "world", "refused"), [(8, 1, False), (7, 1, True), (16, 2, False),
                                                           (17, 3, True)])
def test_too_few_samples_for_one_batch_per_process_are_refused(samples, world, refused):
    datamodule = FaceDataModule(batch_size=8)
    datamodule.trainer = SimpleNamespace(global_rank=0, world_size=world)
    dataset = PlanDataset({None: ([str(i) for i in range(samples)], lambda name: {})})
    if not refused:
        assert len(datamodule._loader(dataset, train=True)) >= 1
        return
    over = f" over {world} processes \\({samples // world} each\\)" if world > 1 else ""
    message = rf"datamodule.batch_size=8: {samples} training samples per epoch{over} do not fill one batch"
    with pytest.raises(ConfigError, match=message):
        datamodule._loader(dataset, train=True)
