"""A local Kubernetes for the sandbox (`xzctl sandbox up --kubernetes`): etcd, kube-apiserver, controller-manager,
scheduler and kwok on 127.0.0.1, with one fake node per edge node of the spec and the cloud's GPU servers.

Enough of a cluster for Pulumi's readiness waits to finish on fake nodes: controller-manager runs without the
node-lifecycle and node-ipam controllers (no kubelet ever reports), kwok marks the nodes Ready and runs their pods,
the `not-ready` taint the API server puts on a new node is removed, claims bind to pre-made volumes of the default
storage class, Ingresses get an address (a kwok Stage), and the ServiceMonitor/PrometheusRule CRDs exist.

The binaries come from `scripts/engine.sh` (its cache, or $XZCTL_ENGINE_BIN, or PATH); etcd from Debian.
The pod follower (xzctl.sandbox.follower) then tells the simulator which image runs on which node, read from
the API server, so the sandbox serves the metrics of what Kubernetes really runs.
"""

from __future__ import annotations

import base64
import datetime
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import requests
import yaml

from xzctl.errors import ExternalToolError
from xzctl.sandbox.cluster_objects import KWOK_ANNOTATION, custom_resource_definitions, fake_nodes, storage_objects
from xzctl.sandbox.processes import free_port as _free_port
from xzctl.sandbox.processes import http_ok
from xzctl.sandbox.processes import spawn as _spawn
from xzctl.sandbox.processes import wait_until as _wait
from xzctl.spec.models import Fleet
from xzctl.state import proc_start as _start_time

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
ENGINE_HINT = "build them: bash scripts/engine.sh (etcd: apt-get install etcd-server), or set XZCTL_ENGINE_BIN"
START_TIMEOUT_SECONDS = 90.0  # the API server is ready in ~3 s alone, far later on a busy 2-core machine
API_TIMEOUT_SECONDS = 10
KWOK_STAGES = "data/sandbox/kwok-stages.yaml"  # package data of xzctl
CONTEXT = "xzctl-sandbox"


def engine_bin_dir() -> Path:
    """Where scripts/engine.sh puts the binaries (same default as the script)."""
    if os.environ.get("XZCTL_ENGINE_BIN"):
        return Path(os.environ["XZCTL_ENGINE_BIN"])
    cache = os.environ.get("XZCTL_ENGINE_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xzctl" / "engine"
    )
    return Path(cache) / "bin"


def find_binaries() -> dict[str, str]:
    """Each binary: the engine cache first, then PATH; ExternalToolError (exit 4) naming the missing ones."""
    search = os.pathsep.join([str(engine_bin_dir()), os.environ.get("PATH", "")])
    found = {name: shutil.which(name, path=search) for name in BINARIES}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise ExternalToolError(f"the sandbox's Kubernetes needs {', '.join(missing)}", hint=ENGINE_HINT)
    return {name: str(path) for name, path in found.items()}


# --- certificates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def write_pki(folder: Path) -> Pki:
    """A CA, the API server's serving certificate, an admin client certificate (system:masters), the SA keys."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    def cert(subject: x509.Name, pub: Any, signer: Any, issuer: x509.Name, exts: list[Any]) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
        )
        for ext, critical in exts:
            builder = builder.add_extension(ext, critical=critical)
        return builder.sign(signer, hashes.SHA256())

    def write(path: Path, data: bytes) -> Path:
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def pem_key(k: ec.EllipticCurvePrivateKey) -> bytes:
        return k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    pem = serialization.Encoding.PEM
    ca_key, ca_name = key(), name("xzctl-sandbox-ca")
    ca = cert(ca_name, ca_key.public_key(), ca_key, ca_name, [(x509.BasicConstraints(ca=True, path_length=None), True)])
    server_key = key()
    sans: list[x509.GeneralName] = [
        x509.DNSName(d) for d in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
    ]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "10.96.0.1")]
    server = cert(
        name("kube-apiserver"),
        server_key.public_key(),
        ca_key,
        ca_name,
        [(x509.SubjectAlternativeName(sans), False)],
    )
    admin_key = key()
    admin = cert(name("xzctl-admin", "system:masters"), admin_key.public_key(), ca_key, ca_name, [])
    sa_key = key()
    sa_pub = sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Pki(
        ca=write(folder / "ca.crt", ca.public_bytes(pem)),
        server_cert=write(folder / "apiserver.crt", server.public_bytes(pem)),
        server_key=write(folder / "apiserver.key", pem_key(server_key)),
        admin_cert=write(folder / "admin.crt", admin.public_bytes(pem)),
        admin_key=write(folder / "admin.key", pem_key(admin_key)),
        sa_key=write(folder / "sa.key", pem_key(sa_key)),
        sa_pub=write(folder / "sa.pub", sa_pub),
    )


def kubeconfig_document(server: str, pki: Pki) -> dict[str, Any]:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server, "certificate-authority-data": b64(pki.ca)}}],
        "users": [
            {
                "name": CONTEXT,
                "user": {"client-certificate-data": b64(pki.admin_cert), "client-key-data": b64(pki.admin_key)},
            }
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT}}],
        "current-context": CONTEXT,
    }


# --- start ---------------------------------------------------------------------------------------------------


@dataclass
class Cluster:
    kubeconfig: Path
    server: str
    pids: dict[str, int] = field(default_factory=dict)
    start_times: dict[str, int] = field(default_factory=dict)


def _https_ok(url: str, pki: Pki) -> bool:
    try:
        response = requests.get(
            url, cert=(str(pki.admin_cert), str(pki.admin_key)), verify=str(pki.ca), timeout=API_TIMEOUT_SECONDS
        )
        return response.status_code == 200
    except requests.RequestException:
        return False


def _alive() -> bool:
    """Readiness of a process without a health port (--secure-port=0): checked later, through what it does."""
    return True


def start_cluster(
    fleet: Fleet, work: Path, procs: list[subprocess.Popen[bytes]], binaries: dict[str, str], simulator_url: str
) -> Cluster:
    """Start every process (appended to `procs`, so the caller stops them on failure), create the starting
    objects, then the pod follower that tells the simulator at `simulator_url` what runs where."""
    kube = work / "kubernetes"
    pki = write_pki(kube / "pki")
    names: list[str] = []

    def start(name: str, argv: list[str], ready: Any) -> None:
        log = kube / f"{name}.log"
        proc = _spawn(argv, log)
        procs.append(proc)
        names.append(name)
        _wait(name, ready, proc, log, START_TIMEOUT_SECONDS)

    etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    start(
        "etcd",
        [
            binaries["etcd"],
            "--name=sandbox",
            f"--data-dir={kube / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=sandbox={peer}",
            "--unsafe-no-fsync",  # a throwaway sandbox: speed over durability
        ],
        lambda: http_ok(f"{etcd_url}/health", API_TIMEOUT_SECONDS),
    )
    server = f"https://127.0.0.1:{api_port}"
    start(
        "kube-apiserver",
        [
            binaries["kube-apiserver"],
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            # 127.0.0.1 cannot be the `kubernetes` Service's endpoint: the reconciler would fail forever.
            "--endpoint-reconciler-type=none",
            # Debian's etcd 3.4 cannot serve streamed lists (RequestWatchProgress): with WatchList on, kwok's
            # watch-list requests fail mid-stream and it retries with back-off, seeing new pods only tens of seconds
            # later; off, they are refused at once and kwok falls back to list + watch.
            "--feature-gates=WatchList=false",
            f"--tls-cert-file={pki.server_cert}",
            f"--tls-private-key-file={pki.server_key}",
            f"--client-ca-file={pki.ca}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            f"--cert-dir={kube / 'pki'}",
        ],
        lambda: _https_ok(f"{server}/readyz", pki),
    )
    kubeconfig = kube / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(kubeconfig_document(server, pki), sort_keys=False), encoding="utf-8")
    kubeconfig.chmod(0o600)
    start(
        "kube-controller-manager",
        [
            binaries["kube-controller-manager"],
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            # No kubelet ever reports: node-lifecycle would taint and evict every fake node, node-ipam needs CIDRs.
            "--controllers=*,-node-lifecycle-controller,-node-ipam-controller",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca}",
            "--use-service-account-credentials=false",
        ],
        _alive,
    )
    start(
        "kube-scheduler",
        [binaries["kube-scheduler"], f"--kubeconfig={kubeconfig}", "--leader-elect=false", "--secure-port=0"],
        _alive,
    )
    config = kube / "kwok.yaml"
    config.write_bytes(resources.files("xzctl").joinpath(KWOK_STAGES).read_bytes())
    start(
        "kwok",
        [
            binaries["kwok"],
            f"--kubeconfig={kubeconfig}",
            f"--config={config}",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
            "--cidr=10.244.0.0/16",
            "--node-ip=127.0.0.1",
        ],
        _alive,
    )
    setup_objects(kubeconfig, fleet, kube / "volumes")
    start(
        "pod-follower",
        [
            sys.executable,
            "-m",
            "xzctl.sandbox.follower",
            f"--kubeconfig={kubeconfig}",
            f"--simulator={simulator_url}",
            f"--ready-file={kube / 'follower.ready'}",
        ],
        (kube / "follower.ready").is_file,
    )
    pids = {name: proc.pid for name, proc in zip(names, procs[-len(names) :], strict=True)}
    return Cluster(
        kubeconfig=kubeconfig,
        server=server,
        pids=pids,
        start_times={name: _start_time(pid) or 0 for name, pid in pids.items()},
    )


def api_client(kubeconfig: Path) -> Any:
    from kubernetes import client, config

    return config.new_client_from_config(str(kubeconfig), client_configuration=client.Configuration())


def setup_objects(kubeconfig: Path, fleet: Fleet, volumes: Path) -> None:
    """CRDs, storage, the fake nodes without their not-ready taint; wait (bounded) until nodes are Ready and the
    controller-manager has made the default service account (pods are refused before it exists)."""
    from kubernetes import client, utils

    api = api_client(kubeconfig)
    core = client.CoreV1Api(api)
    try:
        utils.create_from_yaml(api, yaml_objects=[*custom_resource_definitions(), *storage_objects(fleet, volumes)])
        for obj in fake_nodes(fleet):
            core.create_node(obj, _request_timeout=API_TIMEOUT_SECONDS)
            # The not-ready taint is added by the API server at creation; only the node-lifecycle controller (off
            # here) would lift it. Only the node's own taints stay.
            taints = {"spec": {"taints": obj["spec"]["taints"] or None}}
            core.patch_node(obj["metadata"]["name"], taints, _request_timeout=API_TIMEOUT_SECONDS)
        names = {n["metadata"]["name"] for n in fake_nodes(fleet)}
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        for _ in range(int(START_TIMEOUT_SECONDS)):
            ready = {
                n.metadata.name
                for n in core.list_node(_request_timeout=API_TIMEOUT_SECONDS).items
                if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
            }
            has_sa = bool(
                core.list_namespaced_service_account(
                    "default", field_selector="metadata.name=default", _request_timeout=API_TIMEOUT_SECONDS
                ).items
            )
            if names <= ready and has_sa:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(1.0)
        raise ExternalToolError(
            f"the sandbox's nodes are not Ready after {START_TIMEOUT_SECONDS:.0f} s "
            f"({len(names - ready)} of {len(names)} not Ready, default service account: {has_sa})"
        )
    except client.ApiException as exc:
        raise ExternalToolError(f"the sandbox's API server refused the setup: {exc.status} {exc.reason}") from exc
    finally:
        api.close()
