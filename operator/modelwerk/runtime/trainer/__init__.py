"""Training, as run by the training Job and by ``modelwerk train --local``.

``estimator`` builds allowlisted estimators with checked params, ``features`` compiles the
feature pipeline, ``search`` wraps hyperparameter search, ``evaluate`` scores the holdout,
``signature`` describes inputs and outputs, ``train`` fits (no I/O), ``artifact`` publishes the
model and its card, ``job`` is one run in the pod, ``local`` the laptop variant, ``cli`` the
``modelwerk train`` command.
"""
