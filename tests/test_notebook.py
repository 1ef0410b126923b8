"""notebooks/results.ipynb, executed on the outputs of a small synthetic run: first without a
comparison table (one method ran), then with one."""

from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from nbclient import NotebookClient

from fednuclei.pipelines.compare.nodes import compare_methods

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "results.ipynb"
# Fewer, smaller synthetic tiles, one augmented copy and one epoch of a shallow U-Net: well under a minute
SMALL_DATA = {"raw_tiles": {"type": "fednuclei.datasets.TileSourcesDataset", "sources": {"synthetic": {
    "format": "synthetic", "n_hospitals": 5, "tiles_per_hospital": 5, "size": 128, "seed": 0}}}}
SMALL_BUDGET = "augmentation.copies=1,profiles.cpu.num_server_rounds=1,profiles.cpu.depth=2"


def executed(project: Path) -> str:
    """Run the notebook from ``project/notebooks``, as a reader would, and return the text of its outputs."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (project / "notebooks").mkdir(exist_ok=True)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(project / "notebooks")}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    images = sum("image/png" in output.get("data", {}) for output in outputs)
    texts = [output.get("text", "") + output.get("data", {}).get("text/markdown", "")
             + output.get("data", {}).get("text/plain", "") for output in outputs]
    return f"{images} images\n" + "\n".join(texts)


@pytest.mark.slow
def test_results_notebook_shows_a_finished_run_with_and_without_a_comparison(kedro_project, monkeypatch):
    telemetry_off = {"KEDRO_DISABLE_TELEMETRY": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    for variable, value in telemetry_off.items():
        monkeypatch.setenv(variable, value)  # the notebook's kernel inherits them
    (kedro_project.path / "conf" / "local").mkdir(exist_ok=True)
    (kedro_project.path / "conf" / "local" / "catalog.yml").write_text(yaml.safe_dump(SMALL_DATA))
    completed = kedro_project("run", "--pipeline", "centralized", "--params", SMALL_BUDGET)
    assert completed.returncode == 0, completed.stderr[-6000:]

    reporting = kedro_project.path / "data" / "08_reporting"
    text = executed(kedro_project.path)
    assert "Methods with results: **centralized**" in text
    assert "No comparison table" in text
    # the learning curves of all methods, every plot of the method, the overlays
    assert int(text.split()[0]) == 2 + len(list((reporting / "centralized").glob("*.png")))
    # the final model logged to MLflow, with the run's profile and no other
    assert "models:/m-" in text and "profiles.cpu.num_server_rounds" in text and "profiles.gpu" not in text
    assert not (kedro_project.path / "notebooks" / "mlflow.db").exists()  # MLflow's store is the project's

    (reporting / "compare").mkdir()
    table = compare_methods(centralized=pd.read_csv(reporting / "centralized" / "metrics_per_image.csv"))
    table.to_csv(reporting / "compare" / "metrics_table.csv", index=False)
    text = executed(kedro_project.path)
    assert "No comparison table" not in text and "n_images" in text
