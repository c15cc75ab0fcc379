"""Desk accounts: who may log in (party × role, as the minutes' six signature fields), with argon2id password
hashes, and which of them may decide which finding (the branch config's ``policy.deciders``)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sign_off.minutes import PARTIES, ROLES
from transform.errors import ConfigError

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
    text = path.read_text(encoding="utf-8") if path.exists() else \
        "# Accounts of the review desk (`ecm desk`). Passwords are argon2id hashes; never write a password here.\n"
    text += (f'\n[[account]]\nlogin = "{acc.login}"\nname = "{_toml_str(acc.name)}"\nparty = "{acc.party}"\n'
             f'role = "{acc.role}"\nbranches = [{", ".join(chr(34) + _toml_str(b) + chr(34) for b in acc.branches)}]\n'
             f'password_hash = "{acc.password_hash}"\n')
    path.write_text(text, encoding="utf-8")
    return acc


def _toml_str(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def may_decide(account: Account, finding: Mapping[str, Any], deciders: Mapping[str, list[str]]) -> bool:
    """Whether the account's party × role may decide a finding of this severity (``policy.deciders``)."""
    return account.field in deciders.get(str(finding["severity"]), [])
