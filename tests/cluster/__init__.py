"""A real Kubernetes control plane plus a kubelet stand-in, for integration tests.

Modules: ``pki`` (certificates), ``process`` (child processes that never leak),
``controlplane`` (etcd, kube-apiserver, controller-manager, scheduler),
``node`` (a Node whose pods the test drives or runs locally), ``install`` (CRDs,
operator RBAC and its token kubeconfig). Binaries come from ``hack/kube/build.py``.
See ``TESTING.md``.
"""
