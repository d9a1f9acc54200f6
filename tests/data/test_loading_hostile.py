"""Data files that are not data: pipes, devices, huge or endless files, and secrets such as /etc/shadow.

A data file is read only if it is a regular file, never beyond a cap, and nothing of a file that does not look like
a CSV (a header of at least two comma-separated columns) is quoted in a message.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import yaml

from hpo.config.data_section import DataSettings
from hpo.data.loading import MAX_DATA_BYTES_ENV, load_data
from hpo.errors import DataError
from tests.conftest import run_hpo

#: A line as /etc/shadow holds it; its hash must never appear in a message.
SECRET = "$6$SeCrEtSaLt$Zm9vYmFyYmF6cXV1eHNlY3JldGhhc2g"
SHADOW = f"root:{SECRET}:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nbin:{SECRET}x:19000:0:99999:7:::\n"
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"


def settings(path: Path, target: str = "y") -> DataSettings:
    return DataSettings(path=path, target=target)


def _special_file(kind: str, tmp_path: Path) -> tuple[Path, str]:
    """A data.path that is not a regular file, and the words the error must use for it."""
    if kind == "fifo":
        os.mkfifo(tmp_path / "data.csv")
        return tmp_path / "data.csv", "is a named pipe (FIFO)"
    if kind == "dev-zero-link":
        (tmp_path / "data.csv").symlink_to("/dev/zero")
        return tmp_path / "data.csv", "is a device (a symbolic link to /dev/zero)"
    if kind == "fifo-link":
        os.mkfifo(tmp_path / "pipe")
        (tmp_path / "data.csv").symlink_to(tmp_path / "pipe")
        return tmp_path / "data.csv", "is a named pipe (FIFO) (a symbolic link to"
    if kind == "socket":
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(str(tmp_path / "data.sock"))  # the socket file stays after the socket is closed
        return tmp_path / "data.sock", "is a socket"
    (tmp_path / "data.csv").mkdir()
    return tmp_path / "data.csv", "is a folder"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fifo", "dev-zero-link", "fifo-link", "socket", "folder"])
def test_hpo_run_refuses_a_data_path_that_is_not_a_regular_file(kind: str, tmp_path: Path) -> None:
    """In a subprocess with a timeout: reading a FIFO blocks forever and /dev/zero never ends, so a regression must
    fail this test rather than hang or exhaust the machine."""
    path, words = _special_file(kind, tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"study": {"n_trials": 1}, "data": {"path": str(path), "target": "y"}}))
    result = run_hpo(["run", str(space)], cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"error: {path}: {words}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "studies").exists()


def test_a_special_file_is_refused_in_process_too(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(DataError, match=r"pipe\.csv: is a named pipe \(FIFO\), not a regular file; data\.path must"):
        load_data(settings(tmp_path / "pipe.csv"))  # refused before it is opened: opening a FIFO would block


@pytest.mark.parametrize(
    ("content", "target"),
    [
        (SHADOW, "y"),
        (SHADOW, "root"),
        (KEY, "y"),
        ("root:x:0:0:root:/root:/bin/bash\n" + SHADOW, "y"),
    ],
    ids=["shadow", "shadow-target-root", "private-key", "passwd-then-shadow"],
)
def test_a_file_that_is_not_a_csv_is_named_but_never_quoted(write_csv, content: str, target: str) -> None:
    path = write_csv(content, "shadow")
    with pytest.raises(DataError) as info:
        load_data(settings(path, target))
    message = str(info.value)
    assert message.startswith(f"{path}: its first line is not a CSV header of at least two comma-separated columns")
    assert "none of its content is shown" in message
    for secret in (SECRET, "daemon", "root:", "BEGIN", "b3BlbnNzaC1"):
        assert secret not in message


def test_a_single_column_file_hints_at_its_separator_without_quoting_it(write_csv) -> None:
    path = write_csv("secret_a;secret_b;y\n1;2;0\n")
    with pytest.raises(DataError) as info:
        load_data(settings(path))
    assert "(it holds ';': save the file with commas between the columns)" in str(info.value)
    assert "secret_a" not in str(info.value)


def test_the_target_alone_says_so_and_quotes_no_cell(write_csv) -> None:
    """A one-column file whose column is the target names nothing but what the user typed: not even the values
    (a second line of /etc/shadow would be a "class" of that column)."""
    path = write_csv(f"y\n{SECRET}\nfoo\nbar\n")
    with pytest.raises(DataError) as info:
        load_data(settings(path))
    assert str(info.value) == f"{path}: no feature columns besides the target 'y'; add feature columns to the file"


def test_a_plausible_csv_still_names_its_columns(write_csv) -> None:
    """The rule hides nothing useful: a header of two or more columns is shown when the target is not among them."""
    path = write_csv("age,label\n1,0\n2,1\n")
    with pytest.raises(DataError, match=r"its columns are \['age', 'label'\]"):
        load_data(settings(path))


def test_binary_content_is_refused_by_its_encoding_without_quoting_it(write_csv) -> None:
    path = write_csv(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4, "program")
    with pytest.raises(DataError) as info:
        load_data(settings(path))
    assert str(info.value) == f"{path}: is not UTF-8 text (byte 136); save the CSV as UTF-8"  # 8 + 128: 0x80


@pytest.mark.slow
def test_hpo_run_on_shadow_prints_no_secret(tmp_path: Path) -> None:
    (tmp_path / "shadow").write_text(SHADOW)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"study": {"n_trials": 1}, "data": {"path": "shadow", "target": "root"}}))
    result = run_hpo(["run", str(space)], cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "error: shadow: its first line is not a CSV header" in result.stderr
    assert SECRET not in result.stdout + result.stderr and "daemon" not in result.stdout + result.stderr


def test_a_file_over_the_cap_is_refused_before_it_is_read(write_csv, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_csv("a,y\n")
    os.truncate(path, 64 << 20)  # sparse: 64 MiB of NUL bytes after the header, none of them on disk
    monkeypatch.setenv(MAX_DATA_BYTES_ENV, str(32 << 20))
    with pytest.raises(DataError) as info:
        load_data(settings(path))
    assert str(info.value).startswith(
        f"{path}: is {64 << 20} bytes, more than the {32 << 20} bytes hpo reads from a data file "
        f"(${MAX_DATA_BYTES_ENV} sets the limit)"
    )


def test_the_default_cap_allows_an_ordinary_file(write_csv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_DATA_BYTES_ENV, raising=False)
    rows = "".join(f"{i},{i % 2}\n" for i in range(20))
    assert len(load_data(settings(write_csv("a,y\n" + rows))).train_rows) > 0
    monkeypatch.setenv(MAX_DATA_BYTES_ENV, str(len("a,y\n" + rows)))  # exactly the file's size: still read
    assert len(load_data(settings(write_csv("a,y\n" + rows))).train_rows) > 0


@pytest.mark.parametrize("value", ["lots", "-1", "0", "1e9"])
def test_a_cap_that_is_not_a_number_of_bytes_is_refused(write_csv, monkeypatch, value: str) -> None:
    monkeypatch.setenv(MAX_DATA_BYTES_ENV, value)
    with pytest.raises(DataError, match=rf"\${MAX_DATA_BYTES_ENV}: must be a whole number of bytes >= 1"):
        load_data(settings(write_csv("a,y\n1,0\n2,1\n")))


def test_an_endless_first_line_is_read_only_up_to_a_bound(write_csv) -> None:
    """A header is read through a capped reader: a file with no line break (a dump, a huge single line) is refused
    after 16 MiB instead of being read whole into one string."""
    path = write_csv(b"a" * ((16 << 20) + 1024))
    with pytest.raises(DataError) as info:
        load_data(settings(path))
    assert str(info.value) == (
        f"{path}: its first line is longer than {16 << 20} bytes, so it is not the header of a CSV file; data.path "
        "must be a CSV file"
    )
