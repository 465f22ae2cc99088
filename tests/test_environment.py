"The environment files agree: Makefile, Dockerfile and environment.yml install one pinned, hash-checked set."
import configparser
import re
import shutil
import subprocess
from importlib import metadata

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)")


def lock_pins() -> dict:
    "name -> (version, number of hashes) from requirements-lock.txt."
    pins, current = {}, None
    for line in (REPO / "requirements-lock.txt").read_text().splitlines():
        if match := PIN.match(line):
            current = canonicalize_name(match[1]); pins[current] = [match[2], 0]
        elif line.strip().startswith("--hash=sha256:") and current:
            pins[current][1] += 1
    return pins


def install_commands(text: str) -> list:
    "The pip install commands of a Makefile recipe or Dockerfile RUN, normalised (interpreter and -q/--no-cache-dir dropped)."
    text = text.replace("\\\n", " ")
    commands = re.findall(r"-m pip (install [^&\n]+|check)", text)
    return [" ".join(w for w in c.split() if w not in ("-q", "--no-cache-dir")) for c in commands]


def test_every_pin_has_hashes_and_settings_requirements_are_locked():
    pins = lock_pins()
    assert len(pins) > 100 and all(n_hashes >= 1 for _, n_hashes in pins.values())
    settings = configparser.ConfigParser(); settings.read(REPO / "settings.ini")
    wanted = settings["DEFAULT"]["requirements"].split() + settings["DEFAULT"]["dev_requirements"].split()
    for requirement in map(Requirement, wanted):
        name = canonicalize_name(requirement.name)
        if name == "torch": continue                        # installed first, from TORCH_SPEC
        assert name in pins, f"{name} is required in settings.ini but not pinned in requirements-lock.txt (run make lock)"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), f"{name}=={pins[name][0]} violates {requirement}"


def test_makefile_and_dockerfile_install_the_same_set_the_same_way():
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile[makefile.index("$(STAMP):"):makefile.index("install: $(STAMP)")]
    dockerfile = (REPO / "Dockerfile").read_text()
    make_cmds = [c.replace("$(TORCH_SPEC)", "TORCH") for c in install_commands(recipe)]
    docker_cmds = [c.replace("${TORCH_SPEC}", "TORCH") for c in install_commands(dockerfile)]
    expected = ["install TORCH", "install --require-hashes --no-deps -r requirements-lock.txt", "install --no-deps -e .", "check"]
    assert make_cmds[-4:] == expected and docker_cmds == expected
    make_torch = re.search(r"^TORCH_SPEC \?= (.+)$", makefile, re.M)[1].strip()
    docker_torch = re.search(r'^ARG TORCH_SPEC="([^"]+)"', dockerfile, re.M)[1]
    # the same pin from PyTorch's CPU index: on Linux PyPI's torch==2.13.0 would pull the CUDA libraries
    assert make_torch == docker_torch == "torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu"
    assert re.search(r"^ARG BASE=python:3\.11", dockerfile, re.M) and "FROM ${BASE}" in dockerfile   # a CUDA base is a build argument


def test_environment_yml_installs_the_lock():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "python=3.11" in env["dependencies"] and pip_section == ["--require-hashes", "-r requirements-lock.txt"]
    makefile = (REPO / "Makefile").read_text()
    version = re.search(r"^TORCH_SPEC \?= torch==(\S+)", makefile, re.M)[1]
    assert f"pytorch={version}=cpu_*" in env["dependencies"] and env["channels"] == ["conda-forge"]   # the same torch, CPU


@pytest.mark.skipif(not (REPO / ".venv" / ".installed").exists(), reason="the environment was not installed by make install")
def test_the_installed_environment_is_the_locked_one():
    "After `make install`, every locked package is installed at exactly its pinned version."
    wrong = {}
    for name, (version, _) in lock_pins().items():
        try: installed = metadata.version(name)
        except metadata.PackageNotFoundError: installed = None
        if installed != version: wrong[name] = (version, installed)
    assert not wrong, f"installed versions differ from requirements-lock.txt: {wrong}"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_reproduce_keeps_the_executed_notebooks_in_the_runs_folder(tmp_path):
    """`make reproduce PARAMS=f` puts the executed notebooks in <output_dir>/<run_name>, where the notebooks write the
    run's results, as the package reads the file: a run name with a space, another output folder."""
    elsewhere = tmp_path / "elsewhere.yml"
    elsewhere.write_text("run_name: 'my run'  # a comment\noutput_dir: results/here\n")
    for params, run_dir in [*((p, f"outputs/{yaml.safe_load(p.read_text()).get('run_name', 'mini')}") for p in sorted((REPO / "params").glob("*.yml"))),
                            (elsewhere, "results/here/my run")]:
        recipe = subprocess.run(["make", "-s", "-n", "reproduce", f"PARAMS={params}"], cwd=REPO, capture_output=True, text=True, check=True).stdout
        assert f'mkdir -p "{run_dir}"\n' in recipe, (params.name, recipe)
        assert f'"{run_dir}/analyse_and_report.ipynb" -f {params}' in recipe, params.name
