"""The deploy files not run as a cluster here (issue 15, deployment): ``deploy/redis.conf`` is
accepted by the real ``redis-server`` with its durability settings in effect; the examples
(``docker-compose.yml``, ``kubernetes/``, no Docker engine or cluster here) are well-formed YAML
and agree with the files that are tested: the same HAProxy file and variables, flags ``runtimed``
has, grace periods above the daemon's drain, Redis durable.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py

from runtimed.config.settings import Settings
from tests.support.cluster import DEPLOY, runtimed_flags, system_binary

PENDING = {"--replica"}  # issue 15's flags the daemon gets with the store (see test_systemd_unit)
DRAIN_S = Settings.model_fields["shutdown_grace_s"].default


def test_redis_runs_with_deploy_redis_conf(tmp_path: Path) -> None:
    redis = system_binary("redis-server")
    sock = tmp_path / "redis.sock"
    # The file as shipped; only what a test must change: no TCP port (a socket in tmp), a tmp dir.
    log = tmp_path / "redis.log"
    with open(log, "wb") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen([redis, str(DEPLOY / "redis.conf"), "--port", "0", "--unixsocket", str(sock),
                                 "--dir", str(tmp_path)], stdout=out, stderr=subprocess.STDOUT)
    try:
        client = redis_py.Redis(unix_socket_path=str(sock), decode_responses=True, socket_timeout=10)
        deadline = time.monotonic() + 20  # a bound for start-up
        while True:
            try:
                client.ping()
                break
            except (redis_py.ConnectionError, FileNotFoundError):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.05)
        config = {k: client.config_get(k)[k] for k in ("appendonly", "appendfsync", "maxmemory-policy", "bind")}
        assert config == {"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction",
                          "bind": "127.0.0.1 -::1"}
        client.set("k", "v")
        assert (tmp_path / "appendonlydir").is_dir()
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)


def _yaml(path: Path) -> list[Any]:
    yaml = pytest.importorskip("yaml")
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def _flags(args: list[str]) -> set[str]:
    return {a for a in args if a.startswith("--")}


def test_compose_example_uses_the_tested_haproxy_file() -> None:
    (compose,) = _yaml(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    lb = services["haproxy"]
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]
    replicas = [name for name in services if name.startswith("r") and name[1:].isdigit()]
    assert replicas == ["r1", "r2", "r3"]
    assert {lb["environment"][f"RUNTIMED_REPLICA_{i}"] for i in (1, 2, 3)} == {f"{r}:4707" for r in replicas}
    known = runtimed_flags() | PENDING
    for name in replicas:
        r = services[name]
        assert _flags(r["command"]) <= known, r["command"]
        assert r["command"][r["command"].index("--replica") + 1] == name
        assert _seconds(r["stop_grace_period"]) > DRAIN_S
        assert r["environment"]["RUNTIMED_STORE"].startswith("redis://")
    redis_cmd = services["redis"]["command"]
    assert "./redis.conf:/usr/local/etc/redis/redis.conf:ro" in services["redis"]["volumes"]
    assert redis_cmd[:2] == ["redis-server", "/usr/local/etc/redis/redis.conf"]


def test_kubernetes_example() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for f in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
            if f.name != "kustomization.yaml" for d in _yaml(f)}
    (kustomization,) = _yaml(DEPLOY / "kubernetes" / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(f.name for f in (DEPLOY / "kubernetes").glob("*.yaml")
                                                          if f.name != "kustomization.yaml")
    deployment = docs[("Deployment", "runtimed")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert _flags(container["args"]) <= runtimed_flags() | PENDING, container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pre_stop = float(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + DRAIN_S
    env = {e["name"]: e for e in container["env"]}
    secret = docs[("Secret", "runtimed")]["stringData"]
    for var, key in (("RUNTIMED_AUTH_TOKEN", "auth-token"), ("RUNTIMED_SIGNING_KEY", "signing-key")):
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "runtimed", "key": key}
        assert key in secret
    names = [e["name"] for e in container["env"]]
    assert names.index("REDIS_PASSWORD") < names.index("RUNTIMED_STORE")  # $(REDIS_PASSWORD) is expanded in order
    redis_conf = docs[("ConfigMap", "runtimed-redis")]["data"]["redis.conf"].splitlines()
    assert "appendonly yes" in redis_conf and "appendfsync always" in redis_conf
    statefulset = docs[("StatefulSet", "runtimed-redis")]
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert docs[("Service", "runtimed")]["spec"]["ports"][0]["targetPort"] == "http"


def test_no_example_binds_redis_beyond_loopback_without_a_password() -> None:
    """deploy/redis.conf binds loopback; the examples that open it to a network set requirepass."""
    (compose,) = _yaml(DEPLOY / "docker-compose.yml")
    assert "--requirepass" in compose["services"]["redis"]["command"]
    statefulset = next(d for d in _yaml(DEPLOY / "kubernetes" / "redis.yaml") if d["kind"] == "StatefulSet")
    assert "--requirepass" in statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
