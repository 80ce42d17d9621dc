"""Configuration files: edited value by value, everything else kept byte for byte; unreadable
files named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from protopipe_grid_interface.config import read_yaml, set_yaml_values
from protopipe_grid_interface.exceptions import ConfigError, InputError

GRID = """\
# grid.yaml, as a user keeps it
General:
  mode: "tail"   # tail or wave
  estimate_energy: False
GRID:
  n_file_per_job: 10 # at most 100
  upload_sites: ["CC-IN2P3-USER", "DESY-ZN-USER"]
  banned_sites:
    - LCG.CPPM.fr
  output_se: ''
Performance:
  gamma_list: "XXX.list"
particle_information:
  gamma:
    num_use: 20
"""


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    return path


def test_only_the_edited_values_change(grid: Path) -> None:
    changed = set_yaml_values(grid, {
        ("GRID", "n_file_per_job"): 2,
        ("GRID", "upload_sites"): ["BOX-SE", "BOX-SE2"],
        ("GRID", "output_se"): "BOX-SE",
        ("Performance", "gamma_list"): "/data/gamma PERFORMANCE.list",
        ("particle_information", "gamma", "num_use"): 10,
    })

    assert changed
    assert grid.read_text() == GRID.replace("n_file_per_job: 10 #", "n_file_per_job: 2 #") \
        .replace('["CC-IN2P3-USER", "DESY-ZN-USER"]', '["BOX-SE", "BOX-SE2"]') \
        .replace("output_se: ''", 'output_se: "BOX-SE"') \
        .replace('gamma_list: "XXX.list"', 'gamma_list: "/data/gamma PERFORMANCE.list"') \
        .replace("num_use: 20", "num_use: 10")
    assert read_yaml(grid)["GRID"]["upload_sites"] == ["BOX-SE", "BOX-SE2"]


def test_setting_the_same_values_writes_nothing(grid: Path) -> None:
    before = grid.stat().st_mtime_ns
    assert not set_yaml_values(grid, {("GRID", "n_file_per_job"): 10,
                                      ("General", "estimate_energy"): False})
    assert grid.read_text() == GRID and grid.stat().st_mtime_ns == before


def test_an_unknown_key_is_named_and_nothing_is_written(grid: Path) -> None:
    with pytest.raises(ConfigError, match=r"grid\.yaml: GRID\.n_files_per_job: not found"):
        set_yaml_values(grid, {("GRID", "n_file_per_job"): 2,
                               ("GRID", "n_files_per_job"): 2})
    assert grid.read_text() == GRID


def test_a_value_written_on_other_lines_is_refused_with_how_to_write_it(grid: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        set_yaml_values(grid, {("GRID", "banned_sites"): []})
    assert str(caught.value) == (f"{grid}: GRID.banned_sites: expected its value on the key's "
                                 "line (write it as banned_sites: [])")
    assert grid.read_text() == GRID


def test_a_config_file_that_is_not_text_is_named_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_bytes(b"\x89HDF\r\n\x1a\n\xff\xfe binary")
    with pytest.raises(InputError, match=r"grid\.yaml: not a text file \(not UTF-8\)$"):
        read_yaml(path)
    with pytest.raises(InputError, match=r"grid\.yaml: not a text file"):
        set_yaml_values(path, {("GRID", "n_file_per_job"): 2})


def test_the_directory_keys_of_grid_yaml_place_outputs_and_models_in_the_catalog(
        tmp_path: Path) -> None:
    from protopipe_grid_interface.models import Particle, Stage
    from protopipe_grid_interface.workflow.analysis import Analysis
    from protopipe_grid_interface.workflow.tree import create_analysis

    tree = create_analysis(tmp_path, "ana", None, grid_home="/vo.cta.in2p3.fr/user/t/tester")
    (tree.configs / "analysis.yaml").write_text("General:\n  config_name: ana\n")
    default = Analysis.open(tree.metadata_file).tree
    set_yaml_values(tree.grid_config, {("GRID", "dl2_dir"): "v2/DL2",
                                       ("GRID", "model_dir"): "models"})

    moved = Analysis.open(tree.metadata_file).tree

    home = "/vo.cta.in2p3.fr/user/t/tester/ana"
    assert default.lfn_data_dir(Stage.DL2, Particle.PROTON) == f"{home}/data/DL2/proton"
    assert moved.lfn_data_dir(Stage.DL2, Particle.PROTON) == f"{home}/v2/DL2/proton"
    assert moved.lfn_data_dir(Stage.TRAINING_ENERGY, Particle.GAMMA) == (
        f"{home}/data/TRAINING/for_energy_estimation/gamma")
    assert (default.lfn_estimators, moved.lfn_estimators) == (f"{home}/estimators",
                                                              f"{home}/models")
    assert moved.data_dir(Stage.DL2, Particle.PROTON) == tree.root / "data" / "DL2" / "proton"
