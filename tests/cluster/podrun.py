"""Turn a pod's first container into a local command, the way a kubelet would run it.

Owns: the translation only (no API writes, no process management):

* command + args, with ``$(VAR)`` expansion; ``python``/``python3`` become this
  interpreter and ``modelwerk`` becomes ``python -m modelwerk`` -- the "image"
  is the test environment itself;
* the environment from ``env`` (values, fieldRef, secretKeyRef, configMapKeyRef)
  and ``envFrom``, on top of a minimal base (PATH, HOME, ...) -- never the test
  process's own environment, which holds the operator's credentials;
* volumes: every ``volumeMount`` maps to a host directory (PVC: one directory
  per namespace/claim shared by all pods of the session; emptyDir and projected:
  per pod; configMap/secret: files written from the API objects). ``readOnly``
  is not enforced;
* path rewriting: an env value or argument that starts with a mount path (also
  as ``--flag=/mount/...``) or equals the termination message path is rewritten
  to the host path; ``workingDir`` likewise.
"""

from __future__ import annotations

import base64
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JSON = dict[str, Any]
# read(kind, namespace, name) -> the ConfigMap/Secret as JSON, or None if absent.
Reader = Callable[[str, str, str], JSON | None]

DEFAULT_TERMINATION_PATH = "/dev/termination-log"


class UnsupportedPodSpec(ValueError):
    """The pod uses something the stand-in cannot emulate; the message says what."""


@dataclass
class LocalCommand:
    """Everything needed to run the container locally."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    termination_log: Path  # host file standing in for terminationMessagePath
    # (container path, host directory), longest container path first.
    mounts: list[tuple[str, Path]] = field(default_factory=list)

    def host_path(self, container_path: str) -> Path:
        """Where a path inside the container lives on the host (for assertions)."""
        mapped = _map_path(container_path, self.mounts)
        if mapped is None:
            raise KeyError(
                f"{container_path} is not under any volume mount {[m for m, _ in self.mounts]}"
            )
        return Path(mapped)


def _map_path(value: str, mounts: list[tuple[str, Path]]) -> str | None:
    for mount_path, host in mounts:
        if value == mount_path or value.startswith(mount_path + "/"):
            return str(host) + value[len(mount_path) :]
    return _map_parent(value, mounts)


def _map_parent(value: str, mounts: list[tuple[str, Path]]) -> str | None:
    """A directory that *contains* mounts, e.g. ``/var/run/modelwerk/pvc`` holding
    ``/var/run/modelwerk/pvc/<claim>``: it maps to the host directory that holds the mounts'
    host directories under the same relative names, if there is exactly one such directory.
    Otherwise a program given the parent would read and write the host's real filesystem.
    """
    if not value.startswith("/") or value == "/":
        return None
    parents = set()
    for mount_path, host in mounts:
        if not mount_path.startswith(value.rstrip("/") + "/"):
            continue
        relative = mount_path[len(value.rstrip("/")) + 1 :]
        if not str(host).endswith("/" + relative):
            return None  # this mount lives elsewhere on the host: no common parent
        parents.add(str(host)[: -len(relative) - 1])
    return parents.pop() if len(parents) == 1 else None


def _rewrite(value: str, mounts: list[tuple[str, Path]]) -> str:
    mapped = _map_path(value, mounts)
    if mapped is not None:
        return mapped
    flag, sep, rest = value.partition("=")  # --output=/data/x
    if sep and flag.startswith("-"):
        mapped = _map_path(rest, mounts)
        if mapped is not None:
            return f"{flag}={mapped}"
    return value


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: unknown references stay as they are, ``$$`` escapes."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR.sub(substitute, value)


def _field(pod: JSON, path: str) -> str:
    meta = pod["metadata"]
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": pod["spec"].get("nodeName"),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName"),
        "status.podIP": pod.get("status", {}).get("podIP"),
        "status.hostIP": pod.get("status", {}).get("hostIP"),
    }
    if path in simple:
        return simple[path] or ""
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise UnsupportedPodSpec(f"fieldRef {path!r} is not emulated")


def _key(kind: str, ref: JSON, namespace: str, read: Reader) -> str | None:
    obj = read(kind, namespace, ref["name"])
    data = (obj or {}).get("data") or {}
    if ref["key"] not in data:
        if ref.get("optional"):
            return None
        raise UnsupportedPodSpec(
            f"{kind} {namespace}/{ref['name']} has no key {ref['key']!r} (a kubelet would "
            "refuse to start this container)"
        )
    value = data[ref["key"]]
    return base64.b64decode(value).decode() if kind == "Secret" else str(value)


def _environment(pod: JSON, container: JSON, base: dict[str, str], read: Reader) -> dict[str, str]:
    namespace = pod["metadata"]["namespace"]
    env = dict(base)
    for source in container.get("envFrom") or []:
        kind, ref = (
            ("ConfigMap", source["configMapRef"])
            if "configMapRef" in source
            else ("Secret", source["secretRef"])
        )
        obj = read(kind, namespace, ref["name"])
        if obj is None and not ref.get("optional"):
            raise UnsupportedPodSpec(f"envFrom {kind} {namespace}/{ref['name']} does not exist")
        for key, data in ((obj or {}).get("data") or {}).items():
            env[source.get("prefix", "") + key] = (
                base64.b64decode(data).decode() if kind == "Secret" else str(data)
            )
    for var in container.get("env") or []:
        if "valueFrom" not in var:
            env[var["name"]] = expand(var.get("value", ""), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            value: str | None = _field(pod, source["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in source:
            value = _key("Secret", source["secretKeyRef"], namespace, read)
        elif "configMapKeyRef" in source:
            value = _key("ConfigMap", source["configMapKeyRef"], namespace, read)
        else:
            raise UnsupportedPodSpec(
                f"env {var['name']}: valueFrom {sorted(source)} is not emulated"
            )
        if value is not None:
            env[var["name"]] = value
    return env


def _write_files(directory: Path, obj: JSON | None, items: list[JSON] | None, secret: bool) -> None:
    data: dict[str, bytes] = {}
    for key, value in ((obj or {}).get("data") or {}).items():
        data[key] = base64.b64decode(value) if secret else str(value).encode()
    for key, value in ((obj or {}).get("binaryData") or {}).items():
        data[key] = base64.b64decode(value)
    selected = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]
    for key, relative in selected:
        if key in data:
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data[key])


def _volume_dirs(pod: JSON, pod_dir: Path, claims_dir: Path, read: Reader) -> dict[str, Path]:
    namespace = pod["metadata"]["namespace"]
    dirs: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        if "persistentVolumeClaim" in volume:
            path = claims_dir / namespace / volume["persistentVolumeClaim"]["claimName"]
        elif "configMap" in volume or "secret" in volume:
            secret = "secret" in volume
            source = volume["secret" if secret else "configMap"]
            path = pod_dir / "volumes" / name
            path.mkdir(parents=True, exist_ok=True)
            obj_name = source["secretName" if secret else "name"]
            obj = read("Secret" if secret else "ConfigMap", namespace, obj_name)
            if obj is None and not source.get("optional"):
                raise UnsupportedPodSpec(
                    f"volume {name}: {'Secret' if secret else 'ConfigMap'} "
                    f"{namespace}/{obj_name} does not exist"
                )
            _write_files(path, obj, source.get("items"), secret)
        elif "emptyDir" in volume or "projected" in volume or "downwardAPI" in volume:
            # projected is the service-account token volume: nothing in the test
            # processes reads it, so an empty directory is enough.
            path = pod_dir / "volumes" / name
        else:
            raise UnsupportedPodSpec(
                f"volume {name}: only persistentVolumeClaim, emptyDir, configMap, secret "
                f"and projected volumes are emulated, not {sorted(set(volume) - {'name'})}"
            )
        path.mkdir(parents=True, exist_ok=True)
        dirs[name] = path
    return dirs


def _executable(argv: list[str]) -> list[str]:
    program = os.path.basename(argv[0]) if argv else ""
    if re.fullmatch(r"python(3(\.\d+)?)?", program):
        return [sys.executable, *argv[1:]]
    if program == "modelwerk":
        return [sys.executable, "-m", "modelwerk", *argv[1:]]
    return argv


def base_environment(pod: JSON, pod_dir: Path) -> dict[str, str]:
    """What every container starts with, before its ``env``: like an image's defaults."""
    # Make the test environment's importable code visible as if installed in the
    # image, without the interpreter's own paths (the child has them anyway).
    own = (sys.prefix, sys.base_prefix)
    python_path = [p for p in sys.path if p and not p.startswith(own) and Path(p).is_dir()]
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(pod_dir / "home"),
        "TMPDIR": str(pod_dir / "tmp"),
        "HOSTNAME": pod["metadata"]["name"],
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join(python_path),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def prepare(
    pod: JSON, pod_dir: Path, claims_dir: Path, read: Reader, container: JSON | None = None
) -> LocalCommand:
    """Translate one of the pod's containers (default: the first) into a
    :class:`LocalCommand`; creates its dirs. Containers of a pod share its volumes."""
    first = container is None
    container = pod["spec"]["containers"][0] if container is None else container
    for sub in ("home", "tmp", "rootfs"):
        (pod_dir / sub).mkdir(parents=True, exist_ok=True)

    volumes = _volume_dirs(pod, pod_dir, claims_dir, read)
    mounts: list[tuple[str, Path]] = []
    for mount in container.get("volumeMounts") or []:
        if mount["name"] not in volumes:
            raise UnsupportedPodSpec(f"volumeMount {mount['name']!r} has no volume")
        host = volumes[mount["name"]] / mount.get("subPath", "")
        host.mkdir(parents=True, exist_ok=True)
        mounts.append((mount["mountPath"].rstrip("/") or "/", host))

    termination_path = container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
    termination_log = pod_dir / (
        "termination-log" if first else f"termination-log-{container['name']}"
    )
    termination_log.write_bytes(b"")  # the kubelet creates it empty, too
    # The exact termination path maps to the file; longest mount paths match first.
    mounts.append((termination_path, termination_log))
    mounts.sort(key=lambda m: len(m[0]), reverse=True)

    env = _environment(pod, container, base_environment(pod, pod_dir), read)
    raw = [*(container.get("command") or []), *(container.get("args") or [])]
    if not container.get("command"):
        raise UnsupportedPodSpec(
            f"container {container['name']!r} has no command: the image's entrypoint "
            "is unknown to the stand-in"
        )
    argv = _executable([_rewrite(expand(a, env), mounts) for a in raw])
    env = {k: _rewrite(v, mounts) for k, v in env.items()}

    working_dir = container.get("workingDir")
    if working_dir:
        mapped = _map_path(working_dir, mounts)
        cwd = Path(mapped) if mapped else pod_dir / "rootfs" / working_dir.lstrip("/")
    else:
        cwd = pod_dir / "rootfs"
    cwd.mkdir(parents=True, exist_ok=True)
    return LocalCommand(argv=argv, env=env, cwd=cwd, termination_log=termination_log, mounts=mounts)
