"""Desk accounts: who may log in (party × role, as the minutes' six signature fields), with argon2id password
hashes, and which of them may decide which finding (the branch config's ``policy.deciders``)."""

from __future__ import annotations

import hashlib
import logging
import tomllib
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sign_off.minutes import PARTIES, ROLES
from transform.errors import ConfigError

LOG = logging.getLogger("ecm.desk")

Party = Literal["tong-cuc", "cuc", "chi-cuc"]
Role = Literal["technical", "business"]
_HASHER = PasswordHasher()  # argon2id with the library's current parameters (RFC 9106 low-memory profile)
# a hash to verify against for unknown logins, so that an unknown login costs the same time as a wrong password
_DUMMY = _HASHER.hash("not a password of anyone")


class Account(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    login: str = Field(pattern=r"^[a-z0-9._-]{2,40}$")
    name: str = Field(min_length=1, max_length=100)
    party: Party
    role: Role
    branches: list[str] = Field(default_factory=lambda: ["*"], description="branch codes, or * for every branch")
    password_hash: str = Field(pattern=r"^\$argon2id\$")
    sessions_after: datetime | None = Field(default=None, description="sessions opened before this are refused "
                                                                       "(`ecm desk-revoke`)")

    @property
    def field(self) -> str:
        """The signature field of the minutes this account's person stands for (e.g. ``tong-cuc-business``)."""
        return f"{self.party}-{self.role}"

    @property
    def title(self) -> str:
        party = dict(PARTIES)[self.party]
        role = dict(ROLES)[self.role]
        return f"{self.name} — {role}, {party}"

    def sees(self, branch: str) -> bool:
        return "*" in self.branches or branch in self.branches

    @property
    def stamp(self) -> str:
        """Bound into each session: a new password ends every session opened with the old one."""
        return hashlib.sha256(self.password_hash.encode("ascii")).hexdigest()[:16]

    def session_valid(self, stamp: object, issued: object) -> bool:
        if stamp != self.stamp or not isinstance(issued, int | float):
            return False
        return self.sessions_after is None or issued >= self.sessions_after.timestamp()


class Accounts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: list[Account] = Field(default_factory=list)

    def by_login(self, login: str) -> Account | None:
        return next((a for a in self.account if a.login == login), None)


def hash_password(password: str) -> str:
    if len(password) < 10:
        raise ConfigError("a desk password needs at least 10 characters")
    return _HASHER.hash(password)


def verify(accounts: Accounts, login: str, password: str) -> Account | None:
    """The account if the password is right; None otherwise (unknown login and wrong password alike)."""
    acc = accounts.by_login(login)
    try:
        _HASHER.verify(acc.password_hash if acc else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    return acc


def load_accounts(path: Path) -> Accounts:
    if not path.exists():
        raise ConfigError(f"desk accounts file not found: {path}",
                          hint="create it with `ecm desk-account add FILE --login … --party … --role …`")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        accounts = Accounts.model_validate(data)
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigError(f"desk accounts file {path} is invalid: {exc}".splitlines()[0],
                          hint="each [[account]] needs login, name, party, role, password_hash") from None
    logins = [a.login for a in accounts.account]
    if len(set(logins)) != len(logins):
        raise ConfigError(f"desk accounts file {path} names a login twice")
    return accounts


def add_account(path: Path, login: str, name: str, party: str, role: str, password: str,
                branches: list[str] | None = None) -> Account:
    """Append an account to the file (created if absent); refuses a login already there."""
    accounts = load_accounts(path) if path.exists() else Accounts()
    if accounts.by_login(login):
        raise ConfigError(f"login {login!r} is already in {path}")
    try:
        acc = Account(login=login, name=name, party=party, role=role,  # type: ignore[arg-type]
                      branches=branches or ["*"], password_hash=hash_password(password))
    except ValidationError as exc:
        raise ConfigError(f"invalid account: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    accounts.account.append(acc)
    save_accounts(path, accounts)
    return acc


def revoke_sessions(path: Path, login: str) -> Account:
    """End every open desk session of one account now (the desk re-reads the file on its next request)."""
    accounts = load_accounts(path)
    acc = accounts.by_login(login)
    if acc is None:
        raise ConfigError(f"login {login!r} is not in {path}")
    after = (datetime.now(timezone.utc) + timedelta(seconds=1)).replace(microsecond=0)  # rounded up: none slips by
    new = acc.model_copy(update={"sessions_after": after})
    accounts.account[accounts.account.index(acc)] = new
    save_accounts(path, accounts)
    return new


def save_accounts(path: Path, accounts: Accounts) -> None:
    """Write the accounts file (a new file renamed over the old one: the desk never reads half of it)."""
    text = "# Accounts of the review desk (`ecm desk`). Passwords are argon2id hashes; never write a password here.\n"
    for a in accounts.account:
        text += (f'\n[[account]]\nlogin = "{a.login}"\nname = "{_toml_str(a.name)}"\nparty = "{a.party}"\n'
                 f'role = "{a.role}"\nbranches = [{", ".join(chr(34) + _toml_str(b) + chr(34) for b in a.branches)}]\n'
                 f'password_hash = "{a.password_hash}"\n')
        if a.sessions_after is not None:
            text += f"sessions_after = {a.sessions_after.isoformat()}\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


class AccountsFile:
    """The accounts file as the desk sees it: re-read when it changes (an account removed, a password changed,
    sessions revoked take effect on the next request); a file that does not parse keeps the last good one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime = path.stat().st_mtime_ns
        self._accounts = load_accounts(path)

    def current(self) -> Accounts:
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return Accounts()  # the file is gone: nobody may come in
        if mtime != self._mtime:
            try:
                self._accounts = load_accounts(self.path)
                self._mtime = mtime
            except ConfigError as exc:
                LOG.error("desk: %s — keeping the accounts read before", exc)
        return self._accounts


def _toml_str(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def may_decide(account: Account, finding: Mapping[str, Any], deciders: Mapping[str, list[str]]) -> bool:
    """Whether the account's party × role may decide a finding of this severity (``policy.deciders``)."""
    return account.field in deciders.get(str(finding["severity"]), [])
