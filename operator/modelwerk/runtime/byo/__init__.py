"""Bring your own trainer: the modelwerk steps around a user's training container.

``prepare`` (an init container) writes the training split for the user's container; ``upload``
(a native sidecar) carries the model the container wrote to the artifact store once it exited;
``evaluate`` (the run's final Job) grades the model on the holdout the container never saw,
checks it loads the way the model server loads models, and publishes it. Only these steps
touch the store: the user's container gets the training split and an output directory.
"""
