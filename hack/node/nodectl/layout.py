"""Names, addresses and directories of the local node cluster: one place, so teardown and
start-up always agree on what belongs to the cluster."""

from __future__ import annotations

import os
from pathlib import Path

NODE_NAME = "modelwerk-node"

# The node's own network: a bridge the pods hang off. Its address is the node's InternalIP,
# where the API server listens, and the only gateway pods have (no default route: pods reach
# the node and Services, nothing beyond).
BRIDGE = "mwnode0"
NODE_IP = "10.88.0.1"
POD_CIDR = "10.88.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"

# Persistent across up/down: containerd's image store (so imported images survive) and logs.
STATE = Path(os.environ.get("MODELWERK_NODE_DIR", "/var/lib/modelwerk-node"))
# Gone after down: sockets, containerd's state, the supervisor's pid.
RUN = Path(os.environ.get("MODELWERK_NODE_RUN_DIR", "/run/modelwerk-node"))

CONTAINERD_ROOT = STATE / "containerd"
CONTAINERD_SOCKET = RUN / "containerd.sock"
CONTAINERD_NAMESPACE = "k8s.io"  # the CRI plugin's namespace: images must be imported here
KUBELET_DIR = STATE / "kubelet"
VOLUMES_DIR = STATE / "volumes"
CNI_DIR = STATE / "cni"
LOG_DIR = STATE / "logs"
CONFIG_DIR = STATE / "config"
HOST_RECORD = STATE / "host.json"  # what the host looked like before the first `up`
KUBECONFIG = STATE / "kubeconfig"  # admin kubeconfig of the running cluster
STATUS = RUN / "status.json"  # written by the supervisor once the node is Ready
SUPERVISOR_PID = RUN / "supervisor.pid"

PAUSE_IMAGE = "modelwerk.dev/node/pause:1"
# A closed port on loopback: every registry points here, so nothing can ever be pulled.
NO_REGISTRY = "127.0.0.1:9"

# Netns files the CRI plugin creates (containerd 1.6 hard-codes this directory).
NETNS_DIR = Path("/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")
KUBEPODS_CGROUP = "kubepods"

# Paths whose presence in a process's command line or a mount point marks it as ours.
OWNED_PATHS: tuple[Path, ...] = (STATE, RUN)
