import pytest
import torch

from fednuclei.model.device import evaluating, pick_device

CPU = torch.device("cpu")


def test_pick_device(caplog):
    caplog.set_level("INFO", logger="fednuclei.model.device")
    assert pick_device("cpu") == CPU
    assert "cpu" in caplog.text
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            pick_device("cuda")


def test_evaluating_predicts_without_gradients_and_restores_the_mode(tiny_unet):
    model = tiny_unet().train()
    with evaluating(model, CPU):
        assert not model.training
        logits = model(torch.rand(1, 3, 16, 16))
    assert model.training and not logits.requires_grad
    model.eval()
    with pytest.raises(RuntimeError, match="boom"), evaluating(model, CPU):
        raise RuntimeError("boom")
    assert not model.training
