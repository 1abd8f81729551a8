"""The [cluster] table: etcd endpoints, prefix, instance, TLS and user options."""

from __future__ import annotations

import pytest

from twisted_lb.config import ClusterConfig, ConfigError, load_toml_text, to_toml

BASE = """
[[listen]]
endpoint = "tcp:8080"

[balancers.app]
[[balancers.app.members]]
url = "ajp://127.0.0.1:8009"

[[routes]]
path = "/"
balancer = "app"
"""


def error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        load_toml_text(BASE + text, "/etc/lb/site.toml")
    return e.value


def test_no_cluster_by_default() -> None:
    """Without [cluster] nothing is shared."""
    assert load_toml_text(BASE, "<test>").cluster is None


def test_every_cluster_key(tmp_path) -> None:
    """Every key reaches the model; files are relative to the configuration."""
    (tmp_path / "etcd.pass").write_text("s3cret\n")
    text = (
        BASE
        + """
[cluster]
etcd = ["https://10.0.0.5:2379", "https://10.0.0.6:2379"]
prefix = "/twisted_lb/shop"
instance = "lb-1"
address = "https://lb-1.example.com:8444/"
ca_file = "etcd-ca.pem"
certificate = "client.pem"
key = "client-key.pem"
user = "lb"
password_file = "etcd.pass"
timeout = 3
"""
    )
    config = load_toml_text(text, str(tmp_path / "site.toml"))
    d = str(tmp_path) + "/"
    assert config.cluster == ClusterConfig(
        etcd=("https://10.0.0.5:2379", "https://10.0.0.6:2379"),
        prefix="/twisted_lb/shop",
        instance="lb-1",
        address="https://lb-1.example.com:8444/",
        ca_file=d + "etcd-ca.pem",
        certificate=d + "client.pem",
        key=d + "client-key.pem",
        user="lb",
        password="s3cret",
        timeout=3.0,
    )
    assert load_toml_text(to_toml(config), config.source) == config


def test_defaults_and_one_endpoint_as_a_string() -> None:
    config = load_toml_text(BASE + '[cluster]\netcd = "http://127.0.0.1:2379"\n', "<test>")
    cluster = config.cluster
    assert cluster is not None
    assert cluster.etcd == ("http://127.0.0.1:2379",)
    assert cluster.prefix == "/twisted_lb/default"
    assert cluster.instance and cluster.user is None and cluster.timeout == 2.0
    assert load_toml_text(to_toml(config), "<test>") == config


@pytest.mark.parametrize(
    "table, key, problem",
    [
        ('prefix = "/x"', "cluster.etcd", "is required"),
        ("etcd = []", "cluster.etcd", "at least one etcd endpoint"),
        ('etcd = ["10.0.0.5:2379"]', "cluster.etcd", "is not an etcd endpoint"),
        ('etcd = ["http://h:2379/v3"]', "cluster.etcd", "nothing more"),
        ('etcd = ["http://h:99999"]', "cluster.etcd", "out of range"),
        ('etcd = "http://h:2379"\nprefix = "twisted_lb"', "cluster.prefix", "must start with '/'"),
        ('etcd = "http://h:2379"\nprefix = "/a/"', "cluster.prefix", "trailing"),
        ('etcd = "http://h:2379"\ninstance = "a b"', "cluster.instance", "instance name"),
        ('etcd = "http://h:2379"\nuser = "lb"', "cluster.password", "both user and password"),
        ('etcd = "http://h:2379"\nkey = "k.pem"', "cluster.key", "without a certificate"),
        ('etcd = "http://h:2379"\ntimeout = 0', "cluster.timeout", "greater than 0"),
        (
            'etcd = "http://h:2379"\npassword_file = "/nonexistent/p"',
            "cluster.password_file",
            "cannot be read",
        ),
        ('etcd = "http://h:2379"\nendpoints = []', "cluster.endpoints", "unknown key"),
        ("etcd = 5", "cluster.etcd", "must be a string or an array of strings"),
    ],
)
def test_errors_name_the_key(table: str, key: str, problem: str) -> None:
    e = error("[cluster]\n" + table + "\n")
    assert e.source == "/etc/lb/site.toml"
    assert e.key == key, e
    assert problem in e.problem, e
