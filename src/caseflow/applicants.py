"""The applicant at the window: known by a keyed fingerprint of the ID number, never by the number.

An ID number has little entropy (a region code, a birth date, a sequence and a check digit: about 10^9
numbers for a county), so its plain SHA-256 could be reversed by trying them all. The desk therefore keeps
``HMAC-SHA256(site secret, ID number)``: without the secret the fingerprints in a leaked database or backup
say nothing. The secret is never stored in the database: it lives in a file named by ``[desk] secret_file``
in ``caseflow.toml`` or by ``$CASEFLOW_DESK_SECRET_FILE`` (which wins), created once with ``caseflow desk
keygen FILE``. Keep it with the database's backups but apart from them: lost, it makes every stored
fingerprint unmatchable (visits would be counted afresh), so a new one must never silently replace it —
hence no secret is ever generated on the fly, and a command that needs one and finds none is refused with
:class:`ApplicantKeyError` naming the setting.

Rows written before keyed fingerprints carry ``applicant_scheme = "sha256"`` (migration 0008). They still
match the applicant by the old hash, and the applicant's next visit or booking re-keys them all
(:func:`rekey`): the unkeyed hashes disappear as applicants come back.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Field, Session

from caseflow.config import ConfigError, NotifyConfig

if TYPE_CHECKING:
    from caseflow.engine import Engine

__all__ = [
    "LEGACY_SCHEME",
    "SCHEME",
    "SECRET_ENV",
    "ApplicantKey",
    "ApplicantKeyError",
    "KeyedDesk",
    "legacy_fingerprint",
    "legacy_held",
    "mask_id_number",
    "normalise_id",
    "rekey",
    "rekey_held",
    "scheme_field",
    "write_secret",
]

#: The environment variable naming the secret file (wins over ``[desk] secret_file``).
SECRET_ENV = "CASEFLOW_DESK_SECRET_FILE"
#: The scheme of fingerprints written now, and of those written before keyed fingerprints.
SCHEME = "hmac-sha256"
LEGACY_SCHEME = "sha256"
#: The tables holding an applicant fingerprint (desk.py, appointments.py).
_TABLES = ("caseflow_visits", "caseflow_notices", "caseflow_appointments")
_MIN_SECRET = 32  # bytes
_HOW = ("create one with `caseflow desk keygen /etc/caseflow/desk.key` (keep it out of the database and its "
        "directory) and name it in caseflow.toml as [desk] secret_file = \"/etc/caseflow/desk.key\", or in "
        f"${SECRET_ENV}")


class ApplicantKeyError(ConfigError):
    """No usable site secret for applicant fingerprints: the message names the setting and how to make one."""


def normalise_id(id_number: str) -> str:
    """An ID number without spaces, upper-case; refused when empty or not 6–30 letters and digits."""
    from caseflow.desk import DeskError

    value = re.sub(r"[\s-]", "", str(id_number or "")).upper()
    if not re.fullmatch(r"[0-9A-Z]{6,30}", value):
        raise DeskError("the applicant's ID number must be 6–30 letters and digits (身份证号 is 18); got a value "
                        f"of {len(value)} characters", zh="证件号码应为6至30位字母或数字(身份证号为18位),请核对")
    return value


def mask_id_number(id_number: str) -> str:
    """An ID number as shown anywhere: all but its last four characters starred (as narrate.mask_text)."""
    value = normalise_id(id_number)
    return "*" * (len(value) - 4) + value[-4:]


def legacy_fingerprint(id_number: str) -> str:
    """The unkeyed SHA-256 rows carried before keyed fingerprints (``applicant_scheme = 'sha256'``)."""
    return hashlib.sha256(f"caseflow-applicant:{normalise_id(id_number)}".encode()).hexdigest()


def scheme_field() -> Any:
    """The ``applicant_scheme`` column of a fingerprinted table (placed where migration 0008 added it).

    The code writes :data:`SCHEME`; the database's default is :data:`LEGACY_SCHEME`, which migration 0008
    gave the rows already there, so a fresh database created from the models has the migrated column.
    """
    return Field(default=SCHEME, max_length=16, sa_column_kwargs={"server_default": LEGACY_SCHEME})


class ApplicantKey:
    """The site secret, and the fingerprint it makes of an ID number."""

    def __init__(self, secret: bytes, *, source: str = "<secret>") -> None:
        if len(secret) < _MIN_SECRET:
            raise ApplicantKeyError(f"the site secret must hold at least {_MIN_SECRET} bytes, got {len(secret)}; "
                                    + _HOW, path=source)
        self._secret = secret
        self.source = source

    def __repr__(self) -> str:
        return f"ApplicantKey(source={self.source!r})"  # never the secret

    def fingerprint(self, id_number: str) -> str:
        """``HMAC-SHA256(secret, normalised ID number)`` as hex: the stored identity of an applicant."""
        value = normalise_id(id_number)
        return hmac.new(self._secret, f"caseflow-applicant:{value}".encode(), hashlib.sha256).hexdigest()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ApplicantKey:
        """The secret in ``path`` (as written by :func:`write_secret`: hex text)."""
        where = str(path)
        try:
            text = Path(path).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise ApplicantKeyError(f"the applicant-fingerprint secret file does not exist; {_HOW}",
                                    path=where) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ApplicantKeyError(f"cannot read the applicant-fingerprint secret: {exc}", path=where) from None
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            raise ApplicantKeyError("the secret file must hold hex text (as `caseflow desk keygen` writes)",
                                    path=where) from None
        return cls(secret, source=where)

    @classmethod
    def configured(cls, config_path: str | os.PathLike[str] | None = None) -> ApplicantKey:
        """The secret named by ``$CASEFLOW_DESK_SECRET_FILE``, else by ``[desk] secret_file`` of the configuration.

        Refused (:class:`ApplicantKeyError`) when neither names one.
        """
        named = os.environ.get(SECRET_ENV)
        if named:
            return cls.from_file(named)
        config = NotifyConfig.load(config_path)
        if config.desk.secret_file is not None:
            return cls.from_file(config.desk.secret_file)
        raise ApplicantKeyError("applicant ID numbers are kept as keyed fingerprints and no site secret is "
                                f"configured; {_HOW}", path=config.path or "caseflow.toml", key="desk.secret_file")


def write_secret(path: str | os.PathLike[str]) -> Path:
    """Create a new secret file (32 random bytes as hex, readable by its owner only); never overwrites one."""
    target = Path(path)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ApplicantKeyError("the file exists: a secret in use must not be replaced (every stored "
                                "fingerprint depends on it); choose another path", path=str(target)) from None
    except OSError as exc:
        raise ApplicantKeyError(f"cannot create the secret file: {exc.strerror or exc}", path=str(target)) from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(_MIN_SECRET) + "\n")
    return target


_FINGERPRINTED = tuple(sa.table(name, sa.column("applicant_hash"), sa.column("applicant_scheme")) for name in _TABLES)


@functools.cache
def legacy_held() -> tuple[sa.Exists, ...]:
    """Whether each table holds rows under the unkeyed hash ``:old``: columns a caller reads in its own
    first statement (built once: they run on every visit and booking)."""
    old: sa.BindParameter[str] = sa.bindparam("old")
    return tuple(sa.exists().where(t.c.applicant_hash == old, t.c.applicant_scheme == LEGACY_SCHEME)
                 for t in _FINGERPRINTED)


@functools.cache
def _legacy_rows() -> sa.Select[bool, bool, bool]:
    visits, notices, bookings = legacy_held()
    return sa.select(visits, notices, bookings)


def rekey(session: Session, id_number: str, key: ApplicantKey) -> int:
    """Give this applicant's rows still under the unkeyed hash their keyed fingerprint; how many were moved.

    One indexed look for such rows in the three tables first: on every visit and booking, and nearly
    always none are left, so the three updates run only for an applicant who has some.
    """
    held = session.execute(_legacy_rows(), {"old": legacy_fingerprint(id_number)}).one()
    return rekey_held(session, held, id_number, key)


def rekey_held(session: Session, held: Sequence[bool], id_number: str, key: ApplicantKey) -> int:
    """:func:`rekey` once ``held`` (the :func:`legacy_held` columns, read with ``old`` the applicant's
    :func:`legacy_fingerprint`) is known: only the tables holding such rows are updated."""
    old, new = legacy_fingerprint(id_number), key.fingerprint(id_number)
    moved = 0
    for table, has_rows in zip(_FINGERPRINTED, held, strict=True):
        if not has_rows:
            continue
        result = session.execute(sa.update(table).where(table.c.applicant_hash == old,
                                                        table.c.applicant_scheme == LEGACY_SCHEME)
                                 .values(applicant_hash=new, applicant_scheme=SCHEME))
        moved += int(getattr(result, "rowcount", 0) or 0)
    return moved


class KeyedDesk:
    """What the desk and the appointments share: an engine, a notifier and the applicant key, which is
    read from the configuration only when a fingerprint is first needed (a desk that only lists slots
    needs no secret)."""

    def __init__(self, engine: Engine, *, notify: Callable[[str, str, str], None] | None = None,
                 key: ApplicantKey | None = None) -> None:
        self.engine = engine
        self.notify = notify
        self._key = key

    @property
    def key(self) -> ApplicantKey:
        """The site secret of applicant fingerprints (read from the configuration on first use)."""
        if self._key is None:
            self._key = ApplicantKey.configured()
        return self._key
