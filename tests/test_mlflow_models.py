"""Final models as MLflow models: logged, registered, and predicted from by URI; the hooks that log them
and that keep only the active profile among the logged parameters."""

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml
from kedro.framework.hooks import hook_impl
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner
from PIL import Image

from fednuclei.commands import main
from fednuclei.mlflow_models import log_unet
from fednuclei.mlflow_tracking import ActiveProfileParamsHook, MlflowModelHook
from fednuclei.model.files import save_model
from fednuclei.model.unet import UNet

CATALOG = Path(__file__).resolve().parents[1] / "conf" / "base" / "catalog.yml"


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A throw-away MLflow tracking and registry store (SQLite in tmp_path), also for the commands run here."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture
def model():
    torch.manual_seed(3)  # a random U-Net that finds "nuclei" in the synthetic tile: predictions to compare
    return UNet(width=4, depth=2, groups=2).eval()


@pytest.fixture
def image_folder(tmp_path, synthetic_tiles):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(synthetic_tiles[0].image).save(folder / "tile.png")
    return folder


@pytest.mark.slow
def test_a_registered_model_loads_in_mlflow_and_predicts_as_its_file(tmp_path, mlflow_store, model, image_folder):
    save_model(model, tmp_path / "model.pt")
    with mlflow.start_run() as run:
        info = log_unet(model, name="fedavg")
    version = mlflow.register_model(info.model_uri, "nuclei")
    assert str(version.version) == "1"

    logged = mlflow.models.get_model_info("models:/nuclei/1")
    assert logged.metadata["fednuclei"]["width"] == 4
    assert logged.signature.inputs.inputs[0].shape == (-1, 3, -1, -1)
    batch = torch.rand(3, 3, 32, 48)  # any batch size, any side that is a multiple of 2 ** depth
    with torch.no_grad():
        assert torch.allclose(mlflow.pytorch.load_model("models:/nuclei/1")(batch), model(batch), atol=1e-5)

    for source, out in ((tmp_path / "model.pt", "from_file"), ("models:/nuclei/1", "from_registry"),
                        (f"runs:/{run.info.run_id}/fedavg", "from_run")):
        assert main(["predict", "--model", str(source), "--input", str(image_folder),
                     "--output", str(tmp_path / out)]) == 0
    expected = np.asarray(Image.open(tmp_path / "from_file" / "tile.png"))
    assert expected.max() > 0
    for out in ("from_registry", "from_run"):
        assert np.array_equal(np.asarray(Image.open(tmp_path / out / "tile.png")), expected)


@pytest.mark.slow
def test_a_model_uri_mlflow_does_not_know_is_refused_by_name(tmp_path, mlflow_store, image_folder, capsys):
    arguments = ["--model", "models:/nowhere/1", "--input", str(image_folder), "--output", str(tmp_path)]
    assert main(["predict", *arguments]) == 2
    error = capsys.readouterr().err
    assert "MLflow model models:/nowhere/1" in error and "not found" in error


@pytest.mark.slow
def test_saving_a_final_model_logs_it_into_the_active_run_through_the_catalog(mlflow_store, model):
    entry = "{method}.mlflow_model"
    catalog = DataCatalog.from_config({entry: yaml.safe_load(CATALOG.read_text())[entry]})
    hook = MlflowModelHook()
    hook.after_catalog_created(catalog)
    hook.after_dataset_saved("fedst.global_model", model)  # no MLflow run: nothing to log into
    with mlflow.start_run() as run:
        hook.after_dataset_saved("fedst.global_model", model)
        hook.after_dataset_saved("fedst.base_model", model)  # not a final model
    logged = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert [(m.name, m.source_run_id) for m in logged] == [("fedst", run.info.run_id)]
    loaded = catalog.load("fedst.mlflow_model")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_kedro_mlflow_sees_only_the_active_profile_while_the_node_gets_every_profile():
    profiles = {"cpu": {"width": 8}, "gpu": {"width": 32}}
    logged, received = {}, {}

    class ParamsLogger:  # in the place of kedro-mlflow's hook, a plugin's, registered after the project's
        @hook_impl
        def before_node_run(self, inputs):
            logged.update(inputs)

    def settings(all_profiles, profile):
        received.update(all_profiles)
        return profile

    hook_manager = _create_hook_manager()
    hook_manager.register(ActiveProfileParamsHook())
    hook_manager.register(ParamsLogger())
    catalog = DataCatalog({"params:profiles": MemoryDataset(profiles), "params:profile": MemoryDataset("gpu")})
    SequentialRunner().run(Pipeline([Node(settings, ["params:profiles", "params:profile"], "chosen")]),
                           catalog, hook_manager)
    assert logged["params:profiles"] == {"gpu": {"width": 32}}
    assert received == profiles
