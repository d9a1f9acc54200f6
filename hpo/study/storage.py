"""Optuna RDB storages: the default SQLite file per study, or any SQLAlchemy URL, with passwords kept out of text."""

from __future__ import annotations

import copy
import operator
import os
import random
import re
import stat
import tempfile
import time
import warnings
from collections.abc import Container, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import optuna
import sqlalchemy
import sqlalchemy.engine
import sqlalchemy.event
import sqlalchemy.exc
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import URL, make_url

from hpo.errors import StudyError
from hpo.paths import StudyPaths
from hpo.study.retry import RetryingRDBStorage, storage_retry_seconds

__all__ = [
    "STORAGE_ENV",
    "TRIAL_STATE_INDEX",
    "TrialCache",
    "check_storage_url",
    "describe_storage_error",
    "index_trial_states",
    "open_storage",
    "redact_url",
    "resolve_storage_url",
]

#: Environment variable read when ``--storage`` is not given.
STORAGE_ENV = "HPO_STORAGE"
#: Query parameters whose value may be a credential: ``password``, ``sslpassword`` and ``passfile`` (libpq,
#: psycopg), ``passwd``/``pwd`` (MySQL drivers), tokens, keys, and connection strings that embed a password (a
#: ``dsn``, an ODBC ``odbc_connect``).
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|key|auth|cred|dsn|conninfo|connect_str|connection_str", re.IGNORECASE)
#: A value that embeds a password itself (``odbc_connect=DRIVER=...;PWD=...``, a libpq ``options`` string).
_SECRET_VALUE = re.compile(r"(pass\w*|pwd)\s*=", re.IGNORECASE)
#: The user part as SQLAlchemy reads it: a user name without ``:`` or ``/``, then the password up to the first ``@``.
_USER_PART = re.compile(r"^(?P<head>[\w+]+://[^:/]*:)(?P<password>[^@]*)@")
_QUERY_ITEM = re.compile(r"([?&;])([^=&;#?]*)=([^&;#]*)")
_EXAMPLES = "for example sqlite:///studies/NAME/study.db or postgresql+psycopg://user:password@host/db"


def redact_url(url: str) -> str:
    """The URL, as given, with every credential it may hold replaced by ``***``.

    That is the password of its user part (``user:PASSWORD@host``) and the value of every query parameter that can
    carry one (``?password=``, ``sslpassword``, ``passfile``, ``passwd``, tokens, keys, ``dsn``, ``odbc_connect``,
    or any value holding ``password=``/``pwd=``). Where SQLAlchemy cannot parse the URL, or reads a host holding an
    ``@`` (a password with an unescaped ``@``), everything between the user name and the last ``@`` is hidden.
    """
    text = _USER_PART.sub(r"\g<head>***@", url, count=1) if _parses_cleanly(url) else _mask_to_last_at(url)
    return _QUERY_ITEM.sub(_mask_query_item, text)


def _parses_cleanly(url: str) -> bool:
    """True when SQLAlchemy parses ``url`` and its user part ends at the first ``@`` (as :data:`_USER_PART` reads)."""
    try:
        parsed = make_url(url)
    except Exception:  # ArgumentError, or ValueError for a port that is not a number
        return False
    return "@" not in (parsed.host or "")


def _mask_to_last_at(text: str) -> str:
    """``scheme://user:***@rest`` for the text of a URL whose user part SQLAlchemy does not read reliably; hiding too
    much is the safe side."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    at = rest.rfind("@")
    if at < 0 or rest.startswith("/"):
        return text
    user = re.split(r"[:/]", rest[:at], maxsplit=1)[0]
    return f"{scheme}{sep}{user}:***@{rest[at + 1 :]}"


def _mask_query_item(match: re.Match[str]) -> str:
    lead, key, value = match.groups()
    if _SECRET_KEY.search(unquote_plus(key)) or _SECRET_VALUE.search(unquote_plus(value)):
        return f"{lead}{key}=***"
    return match.group(0)


def _secrets(url: str) -> list[str]:
    """Every credential of ``url`` as it may appear in a driver's message (as given, decoded and encoded), longest
    first, so that :func:`_scrub` can remove them from text the URL does not control."""
    found: set[str] = set()
    try:
        parsed = make_url(url)
        if parsed.password:
            found.add(str(parsed.password))
        for key, values in parsed.query.items():
            for value in (values,) if isinstance(values, str) else values:
                if _SECRET_KEY.search(key) or _SECRET_VALUE.search(value):
                    found.add(value)
    except Exception:  # unparseable: the text masking below still finds the user part
        pass
    user_part = _USER_PART.match(url)
    if user_part:
        found.add(user_part.group("password"))
    rest = url.split("://", 1)[-1]
    at = rest.rfind("@")
    if not _parses_cleanly(url) and at > 0 and ":" in rest[:at] and not rest.startswith("/"):
        found.add(rest[:at].split(":", 1)[1])
    for item in _QUERY_ITEM.finditer(url):
        _, key, value = item.groups()
        if _SECRET_KEY.search(unquote_plus(key)) or _SECRET_VALUE.search(unquote_plus(value)):
            found.add(value)
    variants = {v for secret in found if secret for v in (secret, unquote_plus(secret), quote_plus(secret))}
    return sorted(variants, key=len, reverse=True)


def _scrub(text: str, url: str) -> str:
    """``text`` (a driver's or SQLAlchemy's message about ``url``) with the URL's credentials replaced by ``***``."""
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def describe_storage_error(exc: BaseException, url: str) -> str:
    """``Type: first line`` of a database error about ``url`` (the driver's own error when SQLAlchemy wraps one),
    with the URL's credentials removed."""
    error = getattr(exc, "orig", None) or exc
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {_scrub(lines[0] if lines else '', url)}"


def check_storage_url(url: str, where: str = "--storage") -> URL:
    """``url`` parsed, if hpo can keep a study there: a SQLAlchemy URL of a known database kind that is not in memory.

    Args:
        url: the storage URL.
        where: where it came from, for the message (``--storage``, ``$HPO_STORAGE``).

    Raises:
        StudyError: the URL is malformed (a port that is not a number, an unclosed ``[``), names an unknown kind of
            database, or is an in-memory SQLite database (the study would vanish when hpo exits). The message shows
            the URL with its password masked.
    """
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise StudyError(f"{where}: {redact_url(url)!r} is not a SQLAlchemy URL; use {_EXAMPLES}") from None
    except ValueError:  # SQLAlchemy reads the port with int()
        ipv6 = " (an IPv6 address goes in brackets: postgresql+psycopg://user@[::1]:5432/db)" if "[" in url else ""
        raise StudyError(
            f"{where}: {redact_url(url)!r} is not a valid SQLAlchemy URL: its port is not a number{ipv6}; use "
            f"{_EXAMPLES}"
        ) from None
    try:
        dialect = parsed.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:
        raise StudyError(
            f"{where}: {redact_url(url)!r} names an unknown kind of database {parsed.drivername!r}; use {_EXAMPLES}"
        ) from None
    except ImportError as exc:  # a known dialect whose module needs something missing
        raise StudyError(
            f"{where}: {redact_url(url)!r} needs a database driver that is not installed ({_scrub(str(exc), url)})"
        ) from None
    if dialect.name == "sqlite" and _in_memory(parsed):
        raise StudyError(
            f"{where}: {redact_url(url)!r} is an in-memory SQLite database: the study (every trial, the best one) "
            "would vanish when hpo exits, and other workers or commands could never see it; use a file such as "
            "sqlite:///studies/NAME/study.db, or leave --storage and $HPO_STORAGE unset for the default one"
        )
    return parsed


def _in_memory(parsed: URL) -> bool:
    """True for ``sqlite://``, ``sqlite:///:memory:`` and SQLite URI forms (``file::memory:``, ``mode=memory``)."""
    database = parsed.database or ""
    if database in ("", ":memory:"):
        return True
    uri = str(parsed.query.get("uri", "")).lower() in ("true", "1", "yes", "on")
    return uri and (
        database.startswith("file::memory:") or "mode=memory" in database or parsed.query.get("mode") == "memory"
    )


def resolve_storage_url(paths: StudyPaths, storage: str | None) -> str:
    """``storage``, else ``$HPO_STORAGE``, else the study's own SQLite file.

    Raises:
        StudyError: the URL cannot hold a study (see :func:`check_storage_url`).
    """
    url = storage or os.environ.get(STORAGE_ENV) or None
    if url is None:
        return paths.default_storage_url
    check_storage_url(url, "--storage" if storage else f"${STORAGE_ENV}")
    return url


def open_storage(
    url: str,
    *,
    create: bool,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    retry_seconds: float | None = None,
) -> optuna.storages.RDBStorage:
    """Open an Optuna RDB storage; for a SQLite file, ``create`` allows making it and its folder.

    With ``heartbeat_interval``, every running trial sends a heartbeat; a trial whose worker died (no heartbeat for
    ``grace_period`` seconds) is marked failed and queued again with the same parameters
    (``RetryHeartbeatStaleTrialCallback``). Once open, a lost connection (a server restart, a network blip) is
    retried with backoff for ``retry_seconds`` (default ``$HPO_STORAGE_RETRY``, else 60) before a call raises
    :class:`~hpo.study.retry.StorageUnavailableError` (see :class:`~hpo.study.retry.RetryingRDBStorage`); opening
    itself is not retried, so that a wrong URL is reported at once.

    Raises:
        StudyError: the URL is malformed or in memory, the database cannot be reached, created or opened, or is not
            an Optuna storage this version can read (the message masks every credential of the URL), or
            ``$HPO_STORAGE_RETRY`` is not a number of seconds.
    """
    parsed = check_storage_url(url)
    seconds = storage_retry_seconds() if retry_seconds is None else retry_seconds
    sqlite = parsed.get_backend_name() == "sqlite"
    engine_kwargs: dict[str, object] = {}
    if sqlite:
        _check_sqlite_file(url, Path(parsed.database or ""), create)
        # Several workers share one SQLite file: wait for the lock instead of failing with "database is locked".
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        # A pooled connection that died with a server restart is replaced before use rather than failing a call.
        engine_kwargs["pool_pre_ping"] = True
        engine_kwargs["connect_args"] = _libpq_timeouts(parsed)
    heartbeat: dict[str, Any] = {}
    if heartbeat_interval is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
        heartbeat = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period,
            "heartbeat_stale_trial_callback": retry,
        }
    try:
        storage = _create_rdb_storage(url, engine_kwargs, heartbeat, seconds)
        if sqlite:
            # Write-ahead logging lets readers (the dashboard, other workers) work while one worker writes.
            _wal(storage.engine)
            _sync_commits_at_checkpoints(storage.engine)
        if create:
            index_trial_states(storage.engine)
        return storage
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, RuntimeError) as exc:
        # RuntimeError: Optuna's "no longer compatible with the table schema" (another Optuna version's database).
        detail = _scrub(str(exc).split("\n")[0], url)
        hint = (
            "check that it is an Optuna SQLite database written by this Optuna version, not damaged, and that its "
            "folder can be written"
            if sqlite
            else "check the URL, that the database server is running and that its driver is installed"
        )
        raise StudyError(
            f"{redact_url(url)}: cannot open the study storage ({type(exc).__name__}: {detail}); {hint}"
        ) from None


class TrialCache(optuna.storages._CachedStorage):
    """Optuna's cache of an RDB storage's trials (what ``create_study`` wraps an ``RDBStorage`` in), with cheaper
    reads of the whole study, which Optuna makes twice per trial (``ask`` looking for queued trials, and the
    sampler's snapshot of the history): 7.5 ms at trial 10,000, 3 ms this way (figure 3a of docs/benchmarks.md).

    - A read of queued trials only (what ``ask`` makes) reads the queued trials alone from the database (an index
      lookup on the trial states, and usually none), not every trial that is new or unfinished since the cache's
      last read: with a population of P trials running, Optuna's read is P trials for every ask (P^2 per
      population).
    - A read of queued or running trials only looks at the trials the cache knows are unfinished, not at every
      trial: finished trials never go back.
    - A read of all trials does not sort them: the cache keeps them in the order it read them, and when that is not
      number order (a trial committed after a later-numbered one, or the first trial a worker creates, which
      enters the cache before the study's earlier trials do) the cache itself is put in number order once,
      instead of sorting every read (a sort of 10,000 trials is 1-2 ms of every trial).

    Both return exactly what Optuna's own method returns (tests/study/test_storage.py compares them).
    """

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        if states is not None and _only_waiting(states):
            return self._queued(study_id, deepcopy)
        self._read_trials_from_remote_storage(study_id)
        with self._lock:
            study = self._studies[study_id]
            trials: list[FrozenTrial]
            if states is not None and not any(s in states for s in _FINISHED):
                where = self._trial_id_to_study_id_and_number
                unfinished = (study.trials[where[i][1]] for i in study.unfinished_trial_ids)
                trials = sorted((t for t in unfinished if t.state in states), key=_number)
            else:
                numbers = list(study.trials)
                if numbers != sorted(numbers):
                    # Put the cache itself in number order, once: it stays so as trials are added in number order.
                    study.trials = dict(sorted(study.trials.items()))
                trials = list(study.trials.values())
                if states is not None:
                    trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def _queued(self, study_id: int, deepcopy: bool) -> list[FrozenTrial]:
        """The study's ``WAITING`` trials, read from the database and added to the cache as unfinished trials (the
        trial ``ask`` takes from them is then written through the cache, which must know it)."""
        waiting = self._backend._get_trials(
            study_id, states=(TrialState.WAITING,), included_trial_ids=set(), trial_id_greater_than=-1
        )
        with self._lock:
            if study_id not in self._studies:
                self._studies[study_id] = optuna.storages._cached_storage._StudyInfo()
            self._add_trials_to_cache(study_id, waiting)
            self._studies[study_id].unfinished_trial_ids.update(t._trial_id for t in waiting)
        trials = sorted(waiting, key=_number)
        return copy.deepcopy(trials) if deepcopy else trials


def _only_waiting(states: Container[TrialState]) -> bool:
    return isinstance(states, Iterable) and set(states) == {TrialState.WAITING}


_FINISHED = tuple(s for s in TrialState if s.is_finished())

_number = operator.attrgetter("number")


def check_study_storage(paths: StudyPaths, storage: str | None) -> str:
    """The storage URL of the study at ``paths`` (see :func:`resolve_storage_url`), checked as far as that can be
    done without connecting or leaving anything behind: its form, and for SQLite that the file, if there, is a
    regular file and that its folder can be made (a folder is made and removed where it would go). ``hpo run`` calls
    it before it reads the data or imports torch, so that a wrong URL is reported in a fraction of a second.

    Raises:
        StudyError: the URL cannot hold a study.
    """
    url = resolve_storage_url(paths, storage)
    parsed = check_storage_url(url)
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_file(url, Path(parsed.database or ""), create=True, dry=True)
    return url


def _check_sqlite_file(url: str, database: Path, create: bool, dry: bool = False) -> None:
    """Refuse a SQLite database that is missing (unless ``create``), not a regular file (a named pipe would block
    the reader forever), or whose folder cannot be made (``dry``: probed, not made)."""
    try:
        mode = database.stat().st_mode
    except FileNotFoundError:
        if not create:
            raise StudyError(
                f"{redact_url(url)}: no such database file; run `hpo run` first, or check --study and --storage"
            ) from None
        try:
            if dry:  # can folders be made where the database's would go? (stat above refused a path through a file)
                existing = next(p for p in database.absolute().parents if p.exists())
                os.rmdir(tempfile.mkdtemp(prefix=".hpo-probe-", dir=existing))
                return
            database.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StudyError(
                f"{redact_url(url)}: cannot create the folder {database.parent} for the database "
                f"({exc.strerror or exc}); pass --root (or --storage) with a place you can write"
            ) from None
        return
    except OSError as exc:  # a path through a file, a permission problem, a name too long
        raise StudyError(
            f"{redact_url(url)}: cannot use {database} as a database file ({exc.strerror or exc})"
        ) from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, a named pipe or a socket)"
        raise StudyError(f"{redact_url(url)}: {database} is {kind}, so it cannot be a SQLite database file")


def _libpq_timeouts(parsed: URL) -> dict[str, object]:
    """For PostgreSQL through libpq (psycopg, psycopg2): give up connecting after 10 s, and notice a server that
    vanished without closing the connection (a host down, a network cut) within about a minute, so that the retry
    of a lost connection starts instead of a call hanging for the system's TCP timeout; the URL's own settings win.
    """
    if parsed.get_backend_name() != "postgresql" or parsed.get_driver_name() not in ("psycopg", "psycopg2"):
        return {}
    wanted = {
        "connect_timeout": 10,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    return {key: value for key, value in wanted.items() if key not in parsed.query}


def _create_rdb_storage(
    url: str, engine_kwargs: dict[str, Any], heartbeat: dict[str, Any], retry_seconds: float
) -> optuna.storages.RDBStorage:
    """The storage, retried when processes opening a new database together (workers, or a dashboard or script
    reading the study while the first worker creates it) race to create its tables."""
    for attempt in range(6):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RetryingRDBStorage(
                    url,
                    retry_seconds=retry_seconds,
                    label=redact_url(url),
                    describe=lambda exc: describe_storage_error(exc, url),
                    engine_kwargs=engine_kwargs,
                    **heartbeat,
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.OperationalError) as exc:
            # SQLite says "table ... already exists" as an OperationalError; other OperationalErrors (a server that
            # cannot be reached, a file that cannot be opened) are not races and fail at once.
            # "database is locked": SQLite gives up at once, without waiting, on a lock upgrade two creators race for.
            racing = not isinstance(exc, sqlalchemy.exc.OperationalError) or any(
                text in str(exc) for text in ("already exists", "database is locked")
            )
            if attempt == 5 or not racing:
                raise
            time.sleep(0.2 + random.random() * (attempt + 1))  # another process is creating the same tables
    raise AssertionError("unreachable")


#: The one index hpo adds to Optuna's tables (see :func:`index_trial_states`).
TRIAL_STATE_INDEX = "ix_hpo_trials_study_id_state"


def index_trial_states(engine: sqlalchemy.engine.Engine) -> bool:
    """Index Optuna's ``trials`` table by (study, state), if it is not yet; returns whether the index is there.

    Every worker counts the study's trials by state a few times per trial (the budget, whether the best trial
    changed: :func:`hpo.study.access.trial_counts`). Optuna indexes trials by study only, so each count reads every
    trial row: 2.6 ms at trial 10,000 on SQLite; with this covering index 0.9 ms. Optuna ignores indexes it does not
    know, and an upgrade of its schema keeps them. The index is only a speed-up: a storage where it cannot be made
    (a user without the right to create one, a database busy for a few seconds) works the same without it.
    """
    for _attempt in range(5):
        try:
            if TRIAL_STATE_INDEX in {ix["name"] for ix in sqlalchemy.inspect(engine).get_indexes("trials")}:
                return True
            with engine.begin() as connection:
                connection.exec_driver_sql(
                    f"CREATE INDEX IF NOT EXISTS {TRIAL_STATE_INDEX} ON trials (study_id, state)"
                )
            return True
        except sqlalchemy.exc.SQLAlchemyError as exc:
            # Another worker creating it at the same moment, a busy SQLite file, or no right to create indexes.
            if (
                "database is locked" not in str(exc)
                and "already exists" not in str(exc)
                and "duplicate" not in str(exc)
            ):
                return False
            time.sleep(0.1 + random.random() * 0.4)
    return False


def _wal(engine: sqlalchemy.engine.Engine) -> None:
    """Switch the SQLite file to write-ahead logging; retried while another process opening it holds the lock that
    needs (SQLite reports that at once, without waiting)."""
    for attempt in range(20):
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")
            return
        except sqlalchemy.exc.OperationalError as exc:
            if attempt == 19 or "database is locked" not in str(exc):
                raise
            time.sleep(0.1 + random.random() * 0.4)


def _sync_commits_at_checkpoints(engine: sqlalchemy.engine.Engine) -> None:
    """``PRAGMA synchronous=NORMAL`` on every connection of a WAL-mode SQLite file.

    A trial makes some twenty small commits (one per suggested parameter, user attribute and reported value); with
    SQLite's default ``FULL`` each of them waits for an fsync. In WAL mode ``NORMAL`` is what SQLite recommends: the
    database stays consistent whatever happens, and a worker that is killed loses nothing it committed; only a power
    cut or kernel crash can lose the last commits before the next checkpoint (such a trial is re-run, like any trial
    of a dead worker).
    """

    def on_connect(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    sqlalchemy.event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener existed are closed; new ones get the pragma


def fail_trials_without_heartbeat(study: optuna.Study, grace_period: int) -> list[int]:
    """Fail, and queue again as Optuna does a stale trial, every running trial that has no heartbeat
    ``grace_period`` seconds after it was created; returns their numbers.

    Optuna creates a trial before it starts the trial's heartbeat, and fails only trials whose heartbeat went stale:
    a process killed in between leaves a trial marked running, with no heartbeat, for ever, holding a share of the
    budget that every later run waits for. A live trial records its first heartbeat moments after it is created.
    """
    import copy
    import datetime as dt

    from optuna.storages._rdb import models

    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # Optuna wraps an RDBStorage in a cache
    if not isinstance(backend, optuna.storages.RDBStorage) or backend.heartbeat_interval is None:
        return []
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # Optuna stores datetime_start as naive UTC
    trials = models.TrialModel.__table__.c

    def running() -> list[tuple[int, dt.datetime | None]]:
        # One query for the running trials' starts: study.get_trials would sort every trial of the study in Python.
        query = sqlalchemy.select(trials.trial_id, trials.datetime_start).where(
            trials.study_id == study._study_id, trials.state == optuna.trial.TrialState.RUNNING
        )
        with backend.engine.connect() as connection:
            return [(row[0], row[1]) for row in connection.execute(query)]

    started = backend.retrying(running) if isinstance(backend, RetryingRDBStorage) else running()
    old = [i for i, start in started if start is not None and (now - start).total_seconds() > grace_period]
    if not old:
        return []
    if isinstance(backend, RetryingRDBStorage) and not backend.heartbeats_trustworthy():
        return []  # right after a storage outage, when no worker could send a heartbeat

    def beating() -> set[int]:
        session = backend.scoped_session()
        try:
            column = models.TrialHeartbeatModel.trial_id
            return {row[0] for row in session.query(column).filter(column.in_(old)).all()}
        finally:
            session.close()

    alive = backend.retrying(beating) if isinstance(backend, RetryingRDBStorage) else beating()
    failed = []
    retry = backend.get_heartbeat_stale_trial_callback()
    for trial_id in (i for i in old if i not in alive):
        try:
            if not storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it meanwhile
        trial = copy.deepcopy(storage.get_trial(trial_id))
        failed.append(trial.number)
        if retry is not None:
            retry(study, trial)
    return failed
