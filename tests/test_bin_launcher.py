"""bin/planfleet: runs from a checkout, from PATH via a symlink, and bootstraps its own venv."""

from __future__ import annotations

import base64
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from planfleet import __version__

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIM = REPO_ROOT / "bin" / "planfleet"
INSTALLING = "installing planfleet"
# What a plugin folder needs for pip to build the package from it.
PLUGIN_FILES = ("bin", "src", "pyproject.toml", "README.md", "LICENSE")

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None  # type: ignore[assignment]


def load_shim() -> ModuleType:
    """Import bin/planfleet as a module (its main() only runs as __main__)."""
    loader = importlib.machinery.SourceFileLoader("planfleet_shim", str(SHIM))
    spec = importlib.util.spec_from_loader("planfleet_shim", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def pyproject() -> dict[str, object]:
    """Return pyproject.toml parsed (skips on Python 3.10, which has no tomllib)."""
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11")
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def shim_env(**extra: str) -> dict[str, str]:
    """Return an environment with no pip configuration or index of the machine's own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PIP_") and k not in {"PYTHONPATH", "PLANFLEET_PYTHON", "VIRTUAL_ENV"}
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def run_shim(
    args: Iterable[str], env: dict[str, str], cwd: Path, program: str | Path = SHIM
) -> subprocess.CompletedProcess[str]:
    """Run the launcher and return its result."""
    return subprocess.run(
        [str(program), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def copy_plugin(dest: Path) -> Path:
    """Copy the files a plugin install carries into ``dest`` and return it."""
    for name in PLUGIN_FILES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def requirement_closure(roots: Iterable[str]) -> dict[str, metadata.Distribution]:
    """Return the installed distributions ``roots`` need, transitively, by canonical name."""
    found: dict[str, metadata.Distribution] = {}
    todo = [Requirement(text).name for text in roots]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        found[name] = metadata.distribution(name)
        for text in found[name].requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return found


def repack(dist: metadata.Distribution, dest: Path) -> Path:
    """Write an installed distribution back into a wheel in ``dest`` and return its path."""
    files = [f for f in dist.files or [] if ".." not in f.parts]
    info = next(f.parts[0] for f in files if f.parts[0].endswith(".dist-info"))
    tags = [
        line.split(":", 1)[1].strip()
        for line in (dist.read_text("WHEEL") or "").splitlines()
        if line.startswith("Tag:")
    ]
    python, abi, platform = (".".join(sorted({t.split("-")[i] for t in tags})) for i in range(3))
    wheel = dest / f"{info.removesuffix('.dist-info')}-{python}-{abi}-{platform}.whl"
    installer_files = {f"{info}/{n}" for n in ("RECORD", "INSTALLER", "REQUESTED")}
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            rel = file.as_posix()
            if rel in installer_files or "__pycache__" in file.parts or rel.endswith(".pyc"):
                continue
            if rel == f"{info}/direct_url.json":
                continue
            data = Path(str(dist.locate_file(file))).read_bytes()
            archive.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            records.append(f"{rel},sha256={digest.decode()},{len(data)}")
        records.append(f"{info}/RECORD,,")
        archive.writestr(f"{info}/RECORD", "\n".join(records) + "\n")
    return wheel


def runtime_requirements(*, all_pythons: bool = False) -> list[str]:
    """Return the [project] dependencies of pyproject.toml (those this Python needs)."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    found = list(project["dependencies"])
    if all_pythons:
        return found
    return [t for t in found if (m := Requirement(t).marker) is None or m.evaluate()]


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of wheels for the runtime and build dependencies, made offline.

    The wheels are repacked from the distributions installed in the Python running the
    tests, so the bootstrap test needs no network and no pip cache.
    """
    dest = tmp_path_factory.mktemp("wheelhouse")
    build = pyproject()["build-system"]
    assert isinstance(build, dict)
    for dist in requirement_closure([*runtime_requirements(), *build["requires"]]).values():
        repack(dist, dest)
    return dest


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python >= 3.10 with nothing installed: no planfleet, no dependencies, no pip."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin" / "python"


def test_requirements_match_pyproject() -> None:
    shim = load_shim()
    declared, below = {}, {}
    for text in runtime_requirements(all_pythons=True):
        req = Requirement(text)
        (spec,) = req.specifier
        assert spec.operator == ">="
        declared[req.name] = tuple(int(p) for p in spec.version.split("."))
        if req.marker is not None:
            found = re.fullmatch(r'python_version < "(\d+)\.(\d+)"', str(req.marker))
            assert found, f"the launcher reads only python_version markers: {req}"
            below[req.name] = (int(found[1]), int(found[2]))
    assert declared == shim.REQUIREMENTS
    assert below == shim.NEEDED_BELOW_PYTHON


def test_a_requirement_for_older_pythons_only_is_missing_only_there() -> None:
    shim = load_shim()
    have = {shim.normalize(n): ".".join(map(str, v)) for n, v in shim.REQUIREMENTS.items()}
    del have["tomli"]
    assert shim.missing_requirements(have, (3, 11)) == []
    assert shim.missing_requirements(have, (3, 10)) == ["tomli>=1.1"]


def test_missing_requirements_reads_metadata_folder_names(tmp_path: Path) -> None:
    shim = load_shim()
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in ("PyYAML-6.0.3.dist-info", "jsonschema-4.10.3-py3.11.egg-info"):
        (first / folder).mkdir(parents=True)
    for folder in (
        "jsonschema-4.26.0.dist-info",
        "rich-13.0.dist-info",
        "filelock-3.9.dist-info",
        "markdown_it_py-3.0.0.dist-info",
    ):
        (second / folder).mkdir(parents=True)
    versions = shim.installed_versions([str(first), str(tmp_path / "absent"), str(second)])
    assert versions["jsonschema"] == "4.10.3"  # the first one on the path wins, as in Python
    assert shim.missing_requirements(versions, (3, 12)) == [
        "jsonschema>=4.18",
        "python-frontmatter>=1.0",
        "filelock>=3.12",
        "psutil>=5.9",
    ]


def test_stamp_changes_with_pyproject_and_data_dir_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shim = load_shim()
    root = copy_plugin(tmp_path / "plugin")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    want = shim.wanted_stamp(root)
    assert want["planfleet"] == __version__
    assert not shim.is_current(venv, want)
    (venv / shim.STAMP_NAME).write_text(
        f'{{"planfleet": "{__version__}", "pyproject_sha256": "{want["pyproject_sha256"]}"}}',
        encoding="utf-8",
    )
    assert shim.is_current(venv, want)
    with (root / "pyproject.toml").open("a", encoding="utf-8") as handle:
        handle.write("# changed\n")
    assert not shim.is_current(venv, shim.wanted_stamp(root))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert shim.data_dir() == tmp_path / "xdg" / "planfleet"
    monkeypatch.setenv("CLAUDE_PLUGIN_DATA", str(tmp_path / "plugin-data"))
    assert shim.data_dir() == tmp_path / "plugin-data"


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--version"], f"planfleet {__version__}\n"), (["--help"], "usage: planfleet")],
)
def test_runs_with_a_python_that_has_everything(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    result = run_shim(args, shim_env(PLANFLEET_PYTHON=sys.executable), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(expected)
    assert result.stderr == ""


def test_found_on_path_through_a_symlink(tmp_path: Path) -> None:
    linked = tmp_path / "elsewhere"
    linked.mkdir()
    (linked / "planfleet").symlink_to(SHIM)
    path = os.pathsep.join([str(linked), str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    result = run_shim(["--version"], shim_env(PATH=path), cwd=tmp_path, program="planfleet")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"planfleet {__version__}\n"


def test_no_python_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    result = run_shim(["--version"], shim_env(PATH=str(empty)), cwd=tmp_path)
    assert result.returncode == 3
    assert "needs Python 3.10 or newer" in result.stderr
    assert "PLANFLEET_PYTHON" in result.stderr


def test_bad_planfleet_python_is_a_clear_error(tmp_path: Path) -> None:
    env = shim_env(PLANFLEET_PYTHON=str(tmp_path / "no-such-python"))
    result = run_shim(["--version"], env, cwd=tmp_path)
    assert result.returncode == 3
    assert f"PLANFLEET_PYTHON={tmp_path / 'no-such-python'} is not a Python 3.10" in result.stderr


def test_checkout_without_install_runs_its_own_source(tmp_path: Path, bare_python: Path) -> None:
    checkout = copy_plugin(tmp_path / "checkout")
    init = checkout / "src" / "planfleet" / "__init__.py"
    init.write_text(init.read_text(encoding="utf-8").replace(__version__, "9.9.9+checkout"))
    # A folder holding only the dependencies (with their metadata), as a system Python would.
    deps = tmp_path / "deps"
    deps.mkdir()
    for dist in requirement_closure(runtime_requirements()).values():
        for top in {f.parts[0] for f in dist.files or [] if ".." not in f.parts} - {"__pycache__"}:
            if not (deps / top).exists():
                (deps / top).symlink_to(Path(str(dist.locate_file(top))))
    env = shim_env(
        PYTHONPATH=str(deps),
        PLANFLEET_PYTHON=str(bare_python),
        CLAUDE_PLUGIN_DATA=str(tmp_path / "data"),
    )
    probe = subprocess.run(
        [str(bare_python), "-c", "import yaml, rich; import planfleet"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "No module named 'planfleet'" in probe.stderr  # the package really is not installed
    result = run_shim(["--version"], env, cwd=tmp_path, program=checkout / "bin" / "planfleet")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "planfleet 9.9.9+checkout\n"
    assert not (tmp_path / "data").exists()  # nothing was bootstrapped
    result = run_shim(["--help"], env, cwd=tmp_path, program=checkout / "bin" / "planfleet")
    assert result.returncode == 0, result.stderr
    assert "usage: planfleet" in result.stdout


def test_bootstrap_installs_once_even_when_started_twice_at_once(
    tmp_path: Path, bare_python: Path, wheelhouse: Path
) -> None:
    plugin = copy_plugin(tmp_path / "plugin")
    data = tmp_path / "plugin-data"
    env = shim_env(
        PLANFLEET_PYTHON=str(bare_python),
        CLAUDE_PLUGIN_DATA=str(data),
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheelhouse),
    )
    # what a skill's preflight runs first: `context` says whether this very call installed
    command = [str(plugin / "bin" / "planfleet"), "context", "--json"]
    first_runs = [
        subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    try:
        for process in first_runs:
            outputs.append((*process.communicate(timeout=240), process.returncode))
    finally:
        for process in first_runs:
            if process.poll() is None:
                process.kill()
                process.wait()
    for out, err, code in outputs:
        assert code == 0, err + (data / "install.log").read_text(encoding="utf-8")
        assert json.loads(out)["data"]["environment"]["planfleet"] == __version__
        assert "Traceback" not in err
    assert sum(err.count(INSTALLING) for _, err, _ in outputs) == 1
    # the one that installed says so (the other waited for it, then found it built)
    installed = [json.loads(out)["data"]["environment"] for out, _, _ in outputs]
    assert sorted(e["installed_now"] for e in installed) == [False, True]
    (builder,) = [e for e in installed if e["installed_now"]]
    assert builder["installed_into"] == str(data / "venv")
    stamp = data / "venv" / "planfleet-install.json"
    before = (stamp.read_bytes(), stamp.stat().st_mtime_ns, stamp.stat().st_ino)

    again = run_shim(["--version"], env, cwd=tmp_path, program=command[0])
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"planfleet {__version__}\n"
    assert again.stderr == ""  # no install message, no waiting message
    warm = run_shim(["context", "--json"], env, cwd=tmp_path, program=command[0])
    assert json.loads(warm.stdout)["data"]["environment"]["installed_now"] is False
    # a planfleet started by one that has just installed does not take it for its own
    inherited = dict(env, PLANFLEET_INSTALLED_NOW=f"1 {data / 'venv'}")
    nested = run_shim(["context", "--json"], inherited, cwd=tmp_path, program=command[0])
    assert json.loads(nested.stdout)["data"]["environment"]["installed_now"] is False
    assert (stamp.read_bytes(), stamp.stat().st_mtime_ns, stamp.stat().st_ino) == before
    installed = subprocess.run(
        [str(data / "venv" / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.search(rf"^planfleet=={re.escape(__version__)}$", installed, re.MULTILINE)

    # A built environment is run at once: the Pythons on PATH are not even probed.
    shims = tmp_path / "shims"
    shims.mkdir()
    probes = tmp_path / "probes.log"
    (shims / "python3").write_text(
        f'#!/bin/sh\necho probed >> "{probes}"\nexec "{bare_python}" "$@"\n'
    )
    (shims / "python3").chmod(0o755)
    direct = dict(env, PATH=f"{shims}{os.pathsep}{env['PATH']}")
    del direct["PLANFLEET_PYTHON"]
    fast = run_shim(["--version"], direct, cwd=tmp_path, program=command[0])
    assert (fast.returncode, fast.stdout, fast.stderr) == (0, f"planfleet {__version__}\n", "")
    assert not probes.exists()
    # Built from another pyproject.toml: stale, so PATH is probed again and it is rebuilt.
    with open(plugin / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write("# changed\n")
    stale = run_shim(["context", "--json"], direct, cwd=tmp_path, program=command[0])
    assert stale.returncode == 0, stale.stderr
    assert stale.stderr.count(INSTALLING) == 1
    assert probes.read_text(encoding="utf-8").count("probed") >= 1
    assert "PLANFLEET_REPROBE" not in json.dumps(json.loads(stale.stdout))
    probes.unlink()
    rebuilt = run_shim(["--version"], direct, cwd=tmp_path, program=command[0])
    assert (rebuilt.returncode, rebuilt.stderr) == (0, "")
    assert not probes.exists()


def test_bootstrap_without_a_package_index_says_how_to_install(
    tmp_path: Path, bare_python: Path
) -> None:
    plugin = copy_plugin(tmp_path / "plugin")
    data = tmp_path / "plugin-data"
    env = shim_env(PLANFLEET_PYTHON=str(bare_python), CLAUDE_PLUGIN_DATA=str(data))
    env["PIP_NO_INDEX"] = "1"
    result = run_shim(["--version"], env, cwd=tmp_path, program=plugin / "bin" / "planfleet")
    assert result.returncode == 3
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr  # the install notice and one sentence, no pip output
    assert lines[0].startswith(f"planfleet: {INSTALLING}")
    assert "Traceback" not in result.stderr
    assert "is a package index reachable?" in lines[1]
    # The Python at hand is a virtual environment, so the advice has no --user.
    assert f"`{bare_python} -m pip install '{plugin}'`" in lines[1]
    assert str(data / "install.log") in lines[1]
    assert "No matching distribution" in (data / "install.log").read_text(encoding="utf-8")
    assert not (data / "venv").exists()  # no half-built environment is left to be reused


def test_unusable_data_folder_is_a_clear_error(tmp_path: Path, bare_python: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n", encoding="utf-8")
    env = shim_env(PLANFLEET_PYTHON=str(bare_python), CLAUDE_PLUGIN_DATA=str(blocker / "data"))
    result = run_shim(["--version"], env, cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.startswith(
        f"planfleet: could not prepare a Python environment in {blocker}"
    )
    assert "Traceback" not in result.stderr
