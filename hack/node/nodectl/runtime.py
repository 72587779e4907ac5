"""The node's container runtime: a containerd of its own, and the sandbox (pause) image.

Owns: containerd's configuration (CRI plugin, runc, cgroupfs, CNI bridge, registries that
lead nowhere), starting it, building and importing the pause image, ``ctr`` calls, and
killing every container before containerd stops (so no shim or workload survives it).

Why a containerd of its own and not Docker's: its own root, state and socket keep the node
from touching anything else on the machine. ``restrict_oom_score_adj`` is required on these
kernels: they refuse CAP_SYS_RESOURCE even to root, so lowering a sandbox's oom_score_adj
below containerd's own fails every sandbox with "can't get final child's PID from pipe".
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

from nodectl import layout, sh

HERE = Path(__file__).resolve().parent
PAUSE_SOURCE = HERE.parent / "pause.c"
CNI_BIN_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
# Registries with a hosts.toml pointing at a closed port. containerd 1.7+ also reads
# `_default` for any other registry; 1.6 does not, so the proxy variables below cover those.
REGISTRIES = (
    "_default",
    "docker.io",
    "registry-1.docker.io",
    "registry.k8s.io",
    "k8s.gcr.io",
    "gcr.io",
    "ghcr.io",
    "quay.io",
    "mcr.microsoft.com",
    "public.ecr.aws",
)
NO_PULL_ENV = {
    "HTTP_PROXY": f"http://{layout.NO_REGISTRY}",
    "HTTPS_PROXY": f"http://{layout.NO_REGISTRY}",
    "NO_PROXY": "",
}


def cni_bin_dir() -> Path | None:
    for directory in CNI_BIN_DIRS:
        if (directory / "bridge").is_file() and (directory / "host-local").is_file():
            return directory
    return None


def write_config() -> Path:
    """containerd.toml, the CNI network and the registry hosts; returns the config path."""
    cni_bin = cni_bin_dir()
    assert cni_bin is not None, "checked by the prerequisites"
    config_dir = layout.CONFIG_DIR
    certs = config_dir / "certs.d"
    net_d = layout.CNI_DIR / "net.d"
    for directory in (config_dir, certs, net_d, layout.CONTAINERD_ROOT, layout.RUN):
        directory.mkdir(parents=True, exist_ok=True)
    for registry in REGISTRIES:
        (certs / registry).mkdir(exist_ok=True)
        # Without a [host...] table containerd ignores `server` and goes to the real registry.
        (certs / registry / "hosts.toml").write_text(
            f'server = "https://{layout.NO_REGISTRY}"\n\n'
            f'[host."https://{layout.NO_REGISTRY}"]\n'
            '  capabilities = ["pull", "resolve"]\n'
        )
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    config = config_dir / "containerd.toml"
    config.write_text(
        f"""# Written by hack/node: the modelwerk node's own containerd.
version = 2
root = "{layout.CONTAINERD_ROOT}"
state = "{layout.RUN / "containerd"}"
# The opt plugin would install into /opt/containerd; the others need absent filesystems.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{layout.CONTAINERD_SOCKET}"

[ttrpc]
  address = "{layout.CONTAINERD_SOCKET}.ttrpc"

[{cri}]
  sandbox_image = "{layout.PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{cni_bin}"
  conf_dir = "{net_d}"
  max_conf_num = 1

[{cri}.registry]
  config_path = "{certs}"
"""
    )
    # bridge + host-local; the only route is to the Service range via the node: pods can
    # reach the node and Services, and nothing off this machine.
    (net_d / "10-modelwerk.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "modelwerk",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": layout.BRIDGE,
                        "isGateway": True,
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "dataDir": str(layout.CNI_DIR / "ipam"),
                            "ranges": [[{"subnet": layout.POD_CIDR, "gateway": layout.NODE_IP}]],
                            "routes": [{"dst": layout.SERVICE_CIDR}],
                        },
                    }
                ],
            },
            indent=2,
        )
    )
    return config


def containerd_argv(config: Path) -> list[str]:
    return ["containerd", "--config", str(config)]


def containerd_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return env | NO_PULL_ENV


def _ctr_argv(*args: str) -> list[str]:
    return [
        "ctr",
        "--address",
        str(layout.CONTAINERD_SOCKET),
        "--namespace",
        layout.CONTAINERD_NAMESPACE,
        *args,
    ]


def ctr(*args: str, input: bytes | None = None, check: bool = True) -> str:
    return sh.run(_ctr_argv(*args), input=input, check=check)


def serving() -> bool:
    return layout.CONTAINERD_SOCKET.exists() and sh.ok(
        ["ctr", "--address", str(layout.CONTAINERD_SOCKET), "version"]
    )


def wait_serving(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not serving():
        if time.monotonic() > deadline:
            raise RuntimeError(f"containerd did not serve on {layout.CONTAINERD_SOCKET}")
        time.sleep(0.1)


def images() -> set[str]:
    return {line.strip() for line in ctr("images", "ls", "-q").splitlines() if line.strip()}


def import_image(archive: bytes) -> None:
    ctr("images", "import", "-", input=archive)


# ----------------------------------------------------------------------------- pause image
def _blob(blobs: dict[str, bytes], data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}


def _tar(members: dict[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (data, mode) in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def pause_archive(cache: Path) -> bytes:
    """An OCI archive of the pause image: the static binary of pause.c as the only file.

    Built with the host's C compiler once per source version, then reused from ``cache``.
    """
    source = PAUSE_SOURCE.read_bytes()
    tag = hashlib.sha256(source).hexdigest()[:16]
    cached = cache / f"pause-{tag}.oci.tar"
    if cached.is_file():
        return cached.read_bytes()
    cache.mkdir(parents=True, exist_ok=True)
    binary = cache / f"pause-{tag}"
    subprocess.run(
        ["cc", "-static", "-Os", "-s", "-Wall", "-Wextra", "-o", str(binary), str(PAUSE_SOURCE)],
        check=True,
    )
    layer = _tar({"pause": (binary.read_bytes(), 0o755)})
    blobs: dict[str, bytes] = {}
    compressed = gzip.compress(layer, mtime=0)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **_blob(blobs, json.dumps(config).encode()),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(blobs, compressed)}
        ],
    }
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **_blob(blobs, json.dumps(manifest).encode()),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": layout.PAUSE_IMAGE,
                    "org.opencontainers.image.ref.name": layout.PAUSE_IMAGE.rsplit(":", 1)[1],
                },
            }
        ],
    }
    members = {
        "oci-layout": (b'{"imageLayoutVersion": "1.0.0"}', 0o644),
        "index.json": (json.dumps(index).encode(), 0o644),
    }
    for digest, data in blobs.items():
        members[f"blobs/sha256/{digest.split(':')[1]}"] = (data, 0o644)
    archive = _tar(members)
    tmp = cached.with_suffix(".tmp")
    tmp.write_bytes(archive)
    os.replace(tmp, cached)
    binary.unlink()
    return archive


def ensure_pause_image(cache: Path) -> None:
    if layout.PAUSE_IMAGE not in images():
        import_image(pause_archive(cache))


# ---------------------------------------------------------------------------- containers
def kill_all_containers() -> None:
    """Kill and delete every container (pods included): their shims exit with them."""
    tasks = [line.split()[0] for line in ctr("tasks", "ls").splitlines()[1:] if line.strip()]
    for task in tasks:
        ctr("tasks", "kill", "--all", "--signal", "SIGKILL", task, check=False)
    deadline = time.monotonic() + 10
    for task in tasks:  # a task can only be deleted once it has stopped
        while not sh.ok(_ctr_argv("tasks", "delete", task)) and time.monotonic() < deadline:
            time.sleep(0.1)
        ctr("tasks", "delete", "--force", task, check=False)
    containers = [c for c in ctr("containers", "ls", "-q").split() if c]
    if containers:
        ctr("containers", "delete", *containers, check=False)
