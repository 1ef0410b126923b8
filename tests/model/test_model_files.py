import datetime

import numpy as np
import pytest
import torch

from fednuclei.model.files import arrays_to_state, load_model, save_model, state_to_arrays
from fednuclei.model.unet import UNet


def test_round_trip_keeps_weights_architecture_and_extras(tmp_path):
    torch.manual_seed(0)
    model = UNet(width=8, depth=2, groups=4)
    path = tmp_path / "models" / "global.pt"
    save_model(model, path, {"method": "fedavg", "round": 3, "depth": 2})
    loaded, config = load_model(path, "cpu")
    assert config == {"method": "fedavg", "round": 3, "in_channels": 3, "out_channels": 2,
                      "width": 8, "depth": 2, "groups": 4}
    assert not loaded.training
    for name, array in state_to_arrays(model).items():
        assert torch.equal(loaded.state_dict()[name], torch.from_numpy(array))
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    assert [p.name for p in tmp_path.joinpath("models").iterdir()] == ["global.pt"]  # no staging file left


def test_config_that_contradicts_the_model_or_is_not_plain_is_refused(tmp_path):
    model = UNet(width=8, depth=2)
    with pytest.raises(ValueError, match="width"):
        save_model(model, tmp_path / "m.pt", {"width": 16})
    with pytest.raises(ValueError, match="config.extra.tensor"):
        save_model(model, tmp_path / "m.pt", {"extra": {"tensor": torch.zeros(1)}})
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(
    "write, problem",
    [
        (lambda path: path.write_text("not a model"), "torch cannot load it"),
        (lambda path: torch.save(UNet(width=8, depth=2).state_dict(), path), "plain state dict"),
        (lambda path: torch.save({"format": "other", "config": {}, "state_dict": {}}, path), "format 'other'"),
        (lambda path: torch.save([1, 2], path), "list without a 'format' key"),
        (lambda path: torch.save({"format": "fednuclei-unet", "config": {"width": 8}, "state_dict": {}}, path),
         "lacks a config"),
        # arbitrary pickled objects are refused by weights_only, never executed
        (lambda path: torch.save({"format": "fednuclei-unet", "made": datetime.date(2024, 1, 1)}, path),
         "torch cannot load it"),
    ],
)
def test_files_that_are_not_models_are_refused_by_name(tmp_path, write, problem):
    path = tmp_path / "bad.pt"
    write(path)
    with pytest.raises(ValueError, match=problem) as error:
        load_model(path, "cpu")
    assert str(path) in str(error.value)


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "m.pt"
    save_model(UNet(width=8, depth=2), path, {})
    payload = torch.load(path, weights_only=True)
    payload["config"]["width"] = 16
    torch.save(payload, path)
    with pytest.raises(ValueError, match="do not make a UNet"):
        load_model(path, "cpu")


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_model(tmp_path / "absent.pt", "cpu")


def test_arrays_round_trip_and_are_copies(tiny_unet):
    source, target = tiny_unet(0), tiny_unet(1)
    arrays = state_to_arrays(source)
    arrays_to_state(target, arrays)
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))
    with torch.no_grad():
        next(source.parameters()).add_(1.0)
    assert not np.array_equal(arrays[next(iter(arrays))], state_to_arrays(source)[next(iter(arrays))])


def test_arrays_that_do_not_fit_are_refused(tiny_unet):
    arrays = state_to_arrays(tiny_unet())
    name = next(iter(arrays))
    with pytest.raises(ValueError, match="missing"):
        arrays_to_state(tiny_unet(), {k: v for k, v in arrays.items() if k != name})
    with pytest.raises(ValueError, match=name):
        arrays_to_state(tiny_unet(), {**arrays, name: arrays[name][:1]})
