"""A real single-node Kubernetes cluster on this machine, for the e2e tier (see hack/node/README.md).

Modules: ``layout`` (names, addresses, directories), ``sh`` (running host commands),
``host`` (every change made to the host: recorded before, undone after), ``runtime``
(containerd and the pause image), ``components`` (kubelet and kube-proxy), ``provisioner``
(volumes for claims), ``supervisor`` (one process owning the cluster), ``cli`` (up/down/status).
"""
