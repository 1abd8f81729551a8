"""The [admin] table: defaults, the refusal of an exposed listener without a password, hashes only."""

from __future__ import annotations

import pytest

from twisted_lb.admin import hash_password
from twisted_lb.config import AdminConfig, ConfigError, load_toml, load_toml_text

BASE = """
[[listen]]
endpoint = "tcp:8080"
[balancers.app]
members = [{ url = "ajp://127.0.0.1:8009" }]
"""
HASH = hash_password("x", iterations=1000)


def test_no_admin_table_no_listener() -> None:
    assert load_toml_text(BASE).admin is None


def test_empty_admin_table_is_loopback() -> None:
    assert load_toml_text(BASE + "[admin]\n").admin == AdminConfig()
    assert AdminConfig().endpoint == "tcp:8081:interface=127.0.0.1"


@pytest.mark.parametrize("endpoint", ["tcp:8081", "tcp:8081:interface=0.0.0.0",
                                      "tcp:8081:interface=10.0.0.5", "systemd:domain=INET:index=0"])
def test_exposed_without_password_is_refused(endpoint: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_toml_text(BASE + f'[admin]\nendpoint = "{endpoint}"\n', "lb.toml")
    assert e.value.key == "admin.endpoint" and "no password is set" in e.value.problem
    config = load_toml_text(BASE + f'[admin]\nendpoint = "{endpoint}"\npassword = "{HASH}"\n')
    assert config.admin.password == HASH


def test_plain_password_is_refused() -> None:
    with pytest.raises(ConfigError) as e:
        load_toml_text(BASE + '[admin]\npassword = "secret"\n', "lb.toml")
    assert e.value.key == "admin.password" and "admin-password" in e.value.problem


def test_password_file_and_state_file_are_relative_to_the_config(tmp_path) -> None:
    (tmp_path / "admin.hash").write_text(HASH + "\n")
    path = tmp_path / "lb.toml"
    path.write_text(BASE + '[admin]\nendpoint = "tcp:9000"\npassword_file = "admin.hash"\n'
                    'state_file = "state.json"\n')
    admin = load_toml(str(path)).admin
    assert admin.password == HASH and admin.state_file == str(tmp_path / "state.json")
    path.write_text(BASE + '[admin]\npassword_file = "missing"\n')
    with pytest.raises(ConfigError) as e:
        load_toml(str(path))
    assert e.value.key == "admin.password_file"


def test_allow_is_read_and_checked() -> None:
    config = load_toml_text(BASE + '[admin]\nallow = ["10.0.0.0/8", "127.0.0.1", "::1"]\n')
    assert config.admin.allow == ("10.0.0.0/8", "127.0.0.1", "::1")
    assert load_toml_text(BASE + "[admin]\n").admin.allow is None
    assert load_toml_text(BASE + "[admin]\nallow = []\n").admin.allow == ()
    with pytest.raises(ConfigError) as e:
        load_toml_text(BASE + '[admin]\nallow = ["10.0.0.0/8", "intranet"]\n', "lb.toml")
    assert e.value.key == "admin.allow" and "'intranet' is not an address" in e.value.problem
