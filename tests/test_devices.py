"""Device selection: ``auto`` follows what is there, asking for absent hardware is one clear error."""

import pytest
import torch

import simtune.devices as devices
from simtune.devices import DeviceError, check_process_count, select_device, trainer_options


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)


def test_auto_without_cuda_picks_the_cpu(no_gpu):
    assert select_device("auto") == select_device(None) == select_device("AUTO") == torch.device("cpu")
    assert trainer_options("auto") == {
        "accelerator": "cpu",
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",
        "precision": "32-true",
    }


def test_auto_on_this_machine_matches_what_torch_finds():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:1"])
def test_cuda_without_a_gpu_is_one_line_naming_the_input(no_gpu, spec):
    with pytest.raises(DeviceError) as error:
        select_device(spec)
    message = str(error.value)
    assert "\n" not in message and repr(spec) in message and "no CUDA GPU" in message and "--device cpu" in message


def test_a_gpu_beyond_those_present_is_refused(two_gpus):
    assert select_device("cuda:1") == torch.device("cuda", 1)
    assert select_device("auto") == torch.device("cuda", 0)
    with pytest.raises(DeviceError, match=r"'cuda:3'.*2 CUDA GPU\(s\), numbered 0 to 1"):
        select_device("cuda:3")


@pytest.mark.parametrize("spec", ["gpu", "cpu:0", "cuda:x", "", "mps", "cuda:-1"])
def test_unknown_names_are_refused(spec):
    with pytest.raises(DeviceError, match="not one of auto, cpu, cuda, cuda:N"):
        select_device(spec)


def test_more_processes_than_devices_is_refused(two_gpus, monkeypatch):
    with pytest.raises(DeviceError, match=r"^--devices 4: this machine has 2 CUDA GPU\(s\)$"):
        check_process_count(torch.device("cuda", 0), 4)
    monkeypatch.setattr(devices, "cpu_count", lambda: 2)
    with pytest.raises(DeviceError, match=r"--devices 4 on the CPU: this process may use 2 CPU core"):
        check_process_count(torch.device("cpu"), 4)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(DeviceError, match="expected a whole number >= 1"):
            check_process_count(torch.device("cpu"), bad)
    with pytest.raises(DeviceError, match="num-nodes"):
        check_process_count(torch.device("cpu"), 1, num_nodes=0)


def test_gpu_training_is_mixed_precision_and_ddp_across_processes(two_gpus, monkeypatch):
    assert trainer_options("cuda:1") == {
        "accelerator": "gpu",
        "devices": [1],
        "num_nodes": 1,
        "strategy": "auto",
        "precision": "bf16-mixed",
    }
    assert trainer_options("cuda", devices=2, num_nodes=3)["strategy"] == "ddp"
    with pytest.raises(DeviceError, match="CUDA_VISIBLE_DEVICES"):
        trainer_options("cuda:1", devices=2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert trainer_options("cuda")["precision"] == "16-mixed"


def test_cpu_processes_run_ddp(monkeypatch):
    monkeypatch.setattr(devices, "cpu_count", lambda: 2)
    assert trainer_options("cpu", devices=2) == {
        "accelerator": "cpu",
        "devices": 2,
        "num_nodes": 1,
        "strategy": "ddp",
        "precision": "32-true",
    }
