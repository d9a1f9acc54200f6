"""A disk that fills up, a database made read-only, and a study.db deleted while ``hpo run`` runs.

The full disk is a real 2 MiB tmpfs (we run as root in CI). Each case ends with exit code 2 and one message, never a
traceback, and what the storage held before is still there afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml

import hpo
from hpo.config.experiment import load_experiment
from hpo.errors import StudyError
from hpo.search.run import TrialReport, run_study
from tests.conftest import HPO, REPO, run_hpo, tiny_space

DISK_BYTES = 2 << 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test (unmounted afterwards)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.fail(f"these tests mount a 2 MiB tmpfs and must run as root: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def _fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` up to ``leave`` free bytes with one file, returned so that the test can free the space again."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with filler.open("wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, max(free - leave, 1))
    return filler


def _trials(folder: Path) -> dict[int, tuple[str, float | None]]:
    """Trial number -> (state, value) as a fresh reader of the study's SQLite file sees them."""
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{folder / 'studies/tiny/study.db'}")
    return {t.number: (t.state.name, t.value) for t in study.get_trials(deepcopy=False)}


@pytest.fixture(scope="module")
def two_trials(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``studies/tiny`` after a 2-trial ``hpo run`` (made once; tests copy it)."""
    folder = tmp_path_factory.mktemp("two_trials")
    assert run_hpo(["run", str(_write_space(folder, 2))], cwd=folder).returncode == 0
    return folder


def _copy_study(two_trials: Path, to: Path) -> None:
    shutil.copytree(two_trials / "studies", to / "studies")


def _write_space(folder: Path, n_trials: int) -> Path:
    path = folder / f"space{n_trials}.yaml"
    path.write_text(yaml.safe_dump(tiny_space(study={"n_trials": n_trials})), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("leave_kib", [0, 80, 300])
def test_hpo_run_on_a_full_disk_exits_2_and_loses_nothing(small_disk: Path, leave_kib: int, two_trials: Path) -> None:
    """A study of 2 trials is resumed for 6 on a disk with ``leave_kib`` KiB free: opening the storage (0), recording
    the next trials (80) or writing their TensorBoard runs (300) fails. Either way: exit 2, a message naming the
    full disk, and the 2 recorded trials and best/ intact."""
    _copy_study(two_trials, small_disk)
    before = _trials(small_disk)
    assert [state for state, _ in before.values()] == ["COMPLETE", "COMPLETE"]
    filler = _fill(small_disk, leave_kib << 10)
    result = run_hpo(["run", str(_write_space(small_disk.parent, 6))], cwd=small_disk)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    # which write meets the full disk first (the database, a TensorBoard run, best/) depends on how much is left
    storage_full = error.startswith("error: sqlite:///studies/tiny/study.db: cannot ") and (
        "disk is full" in error or "disk I/O error" in error
    )
    folder_full = error.startswith("error: studies/tiny") and "No space left on device" in error
    assert storage_full or folder_full, error
    filler.unlink()
    after = _trials(small_disk)
    assert {n: after[n] for n in before} == before
    best = hpo.load_model(small_disk / "studies/tiny/best")
    assert after[best.card["trial"]][0] == "COMPLETE"


@pytest.mark.slow
def test_hpo_run_on_a_full_disk_from_the_start(small_disk: Path) -> None:
    _fill(small_disk, 0)
    result = run_hpo(["run", str(_write_space(small_disk.parent, 2))], cwd=small_disk)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: sqlite:///studies/tiny/study.db: cannot ")


@pytest.mark.slow
def test_a_read_only_database_is_a_message(tmp_path: Path, two_trials: Path) -> None:
    """A study whose file and folder are read-only (as root, without the capability that ignores permissions)."""
    _copy_study(two_trials, tmp_path)
    folder = tmp_path / "studies/tiny"
    (folder / "study.db").chmod(0o444)
    folder.chmod(0o555)
    unprivileged = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    try:
        result = subprocess.run(
            [*(unprivileged if os.geteuid() == 0 else []), *HPO, "run", str(_write_space(tmp_path, 4))],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"},
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        folder.chmod(0o755)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error = result.stderr.strip()  # opening the storage or the first write to it fails, whichever comes first
    assert error.startswith("error: sqlite:///studies/tiny/study.db: cannot ") and "\n" not in error
    assert "attempt to write a readonly database" in error
    assert [state for state, _ in _trials(tmp_path).values()] == ["COMPLETE", "COMPLETE"]


@pytest.mark.slow
def test_predict_onto_a_full_disk_leaves_no_temporary_file(
    small_disk: Path, inference_study: Path, tmp_path: Path
) -> None:
    source = REPO / "hpo/data/datasets/breast_cancer.csv"
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    big = tmp_path / "big.csv"
    big.write_text(lines[0] + "".join(lines[1:]) * 20, encoding="utf-8")  # 11,380 rows: ~400 KB of predictions
    output = small_disk / "scores.csv"
    output.write_text("the previous predictions\n")
    _fill(small_disk, 64 << 10)
    result = run_hpo(["predict", "--model", str(inference_study / "inf/best"), str(big), "-o", str(output)], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"error: {output}: cannot write the predictions (No space left on device); no output was written and an "
        "existing file there is unchanged. Free disk space or choose another output path (-o)"
    )
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "scores.csv"]  # no hidden .scores.csv.*
    assert output.read_text() == "the previous predictions\n"


# --- study.db deleted or replaced mid-run ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_database_deleted_mid_run_is_a_study_error(tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite keeps writing to a deleted file through its open connection: without the check, the run reported
    6/6 finished and exit 0, and every record vanished with the process."""
    monkeypatch.chdir(tmp_path)  # the default storage URL is relative: sqlite:///studies/tiny/study.db
    database = tmp_path / "studies/tiny/study.db"
    seen: list[TrialReport] = []

    def after(report: TrialReport) -> None:
        seen.append(report)
        if len(seen) == 1:
            if how == "deleted":
                database.unlink()
            else:
                shutil.copy(database, tmp_path / "copy.db")
                os.replace(tmp_path / "copy.db", database)  # a new file (inode) under the same name

    with pytest.raises(StudyError) as info:
        run_study(load_experiment(_write_space(tmp_path, 6)), root=Path("studies"), on_trial_end=after)
    message = str(info.value)
    assert message.startswith(f"{database}: the study database was deleted or replaced while hpo run was running; the ")
    assert re.search(r"; the \d+ trials' records it held \(this run's included\) are lost with it; ", message)
    assert "their TensorBoard runs remain in studies/tiny/tb" in message
    assert len(seen) == 1  # no trial was reported as recorded after the file had gone
    assert database.exists() == (how == "replaced")
