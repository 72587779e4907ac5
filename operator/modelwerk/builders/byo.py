"""The Jobs of a bring-your-own-trainer run: the trainer pod, then modelwerk's evaluation.

The trainer pod::

    init  prepare  (runtime image, store access)  training split -> emptyDir "input"
    init  upload   (runtime image, store access, native sidecar) waits; after the trainer
                   exits, model.joblib or model.onnx from emptyDir "output" -> the run's
                   directory
    main  trainer  (the user's image) input (read-only), output and /tmp; nothing else

The trainer container is built here from scratch, not from the workload template: it gets no
artifact volume, no store or tracking credentials, no service-account token, only the
contract's environment (``api.v1alpha1.trainer``) and the user's own variables, under the
same restricted security context as every modelwerk pod. Its termination message falls back
to the tail of its log, so a crash's last words reach the TrainingJob's status.
"""

from __future__ import annotations

import copy
from typing import Any

from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.api.v1alpha1.trainer import (
    OUTPUT_DIR_ENV,
    SEED_ENV,
    TARGET_ENV,
    TASK_ENV,
    TRAIN_PATH_ENV,
)
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.builders.labels import child_name, owner_reference
from modelwerk.builders.training_job import labels_of, training_job_name, workload_of
from modelwerk.builders.workload import (
    CONTAINER_SECURITY,
    TERMINATION_MESSAGE_PATH,
    WorkloadConfig,
    build_job,
    build_pod_spec,
    resources_of,
)

INPUT_DIR = "/var/run/modelwerk/input"
OUTPUT_DIR = "/var/run/modelwerk/output"
TRAIN_FILE = "train.parquet"
UPLOAD_GRACE_SECONDS = 300
"""How long the upload sidecar may take once the trainer exited (the pod's grace period)."""
READY_FILE = "/tmp/modelwerk-upload-ready"
MODEL_URI_ENV = "MODELWERK_BYO_MODEL_URI"
SHA256_ENV = "MODELWERK_BYO_SHA256"
FORMAT_ENV = "MODELWERK_BYO_FORMAT"


def trainer_job_name(tj: TrainingJob, fingerprint: str) -> str:
    return child_name(tj.metadata.name, f"trainer-{fingerprint}")


def build_trainer_job(
    tj: TrainingJob, dataset: Dataset, fingerprint: str, config: WorkloadConfig
) -> dict[str, Any]:
    trainer = tj.spec.trainer
    assert trainer is not None
    base = workload_of(tj, dataset, fingerprint, config, ["modelwerk", "byo", "prepare"])
    pod = build_pod_spec(base, config, tj.metadata.namespace)
    (template,) = pod["containers"]
    input_mount = {"name": "input", "mountPath": INPUT_DIR}
    output_mount = {"name": "output", "mountPath": OUTPUT_DIR}

    prepare = copy.deepcopy(template) | {"name": "prepare"}
    prepare["env"] = [*prepare["env"], {"name": "MODELWERK_BYO_INPUT_DIR", "value": INPUT_DIR}]
    prepare["volumeMounts"] = [*prepare["volumeMounts"], input_mount]

    upload = copy.deepcopy(template) | {
        "name": "upload",
        "command": ["modelwerk", "byo", "upload"],
        "restartPolicy": "Always",  # a native sidecar: runs beside the trainer, stopped after it
    }
    upload["env"] = [
        *upload["env"],
        {"name": "MODELWERK_BYO_OUTPUT_DIR", "value": OUTPUT_DIR},
        {"name": "MODELWERK_BYO_READY_FILE", "value": READY_FILE},
    ]
    upload["volumeMounts"] = [*upload["volumeMounts"], output_mount | {"readOnly": True}]
    # The trainer starts once this passes: the sidecar listens for SIGTERM by then.
    upload["startupProbe"] = {
        "exec": {"command": ["test", "-e", READY_FILE]},
        "periodSeconds": 1,
        "failureThreshold": 120,
    }

    contract = {
        TRAIN_PATH_ENV: f"{INPUT_DIR}/{TRAIN_FILE}",
        OUTPUT_DIR_ENV: OUTPUT_DIR,
        TARGET_ENV: dataset.spec.target or "target",
        TASK_ENV: trainer.task,
        SEED_ENV: str(tj.spec.split.seed),
        "HOME": "/tmp",
    }
    env = [v.to_k8s() for v in trainer.env if v.name not in contract]
    env += [{"name": k, "value": v} for k, v in contract.items()]
    main: dict[str, Any] = {
        "name": "trainer",
        "image": trainer.image,
        "env": env,
        "resources": resources_of(trainer.resources),
        "volumeMounts": [
            input_mount | {"readOnly": True},
            output_mount,
            # Its own /tmp: the modelwerk containers' /tmp (HOME) is never the user's to fill.
            {"name": "trainer-tmp", "mountPath": "/tmp"},
        ],
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
    }
    if trainer.command:
        main["command"] = list(trainer.command)
    if trainer.args:
        main["args"] = list(trainer.args)
    if trainer.image_pull_policy:
        main["imagePullPolicy"] = trainer.image_pull_policy

    pod["initContainers"] = [prepare, upload]
    pod["containers"] = [main]
    pod["volumes"] = [
        *pod["volumes"],
        {"name": "input", "emptyDir": {}},
        {"name": "output", "emptyDir": {}},
        {"name": "trainer-tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    pod["terminationGracePeriodSeconds"] = UPLOAD_GRACE_SECONDS
    return build_job(
        name=trainer_job_name(tj, fingerprint),
        namespace=tj.metadata.namespace,
        labels=labels_of(tj, fingerprint, "trainer"),
        owner=owner_reference(tj),
        pod_spec=pod,
        active_deadline_seconds=tj.spec.active_deadline_seconds,
        backoff_limit=tj.spec.backoff_limit,
    )


def build_evaluation_job(
    tj: TrainingJob,
    dataset: Dataset,
    fingerprint: str,
    config: WorkloadConfig,
    model_uri: str,
    sha256: str,
    model_format: str = "joblib",
) -> dict[str, Any]:
    """The run's final Job: modelwerk grades, publishes and checks the trainer's model."""
    base = workload_of(tj, dataset, fingerprint, config, ["modelwerk", "byo", "evaluate"])
    base.env.update({MODEL_URI_ENV: model_uri, SHA256_ENV: sha256, FORMAT_ENV: model_format})
    return build_job(
        name=training_job_name(tj, fingerprint),
        namespace=tj.metadata.namespace,
        labels=labels_of(tj, fingerprint, "training"),
        owner=owner_reference(tj),
        pod_spec=build_pod_spec(base, config, tj.metadata.namespace),
        active_deadline_seconds=tj.spec.active_deadline_seconds,
        backoff_limit=0,
        ttl_seconds_after_finished=tj.spec.ttl_seconds_after_finished,
    )
