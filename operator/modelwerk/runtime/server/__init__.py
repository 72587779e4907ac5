"""The model server: one verified scikit-learn artifact behind the Open Inference Protocol.

``modelwerk serve`` (see :mod:`.cli`) verifies the artifact's sha256 before unpickling it,
loads and warms it up, then serves V2 REST (plus a V1 ``:predict`` shim) from a lean ASGI app
(:mod:`.app`) under uvicorn. Concurrent requests are merged into one ``predict`` call by the
micro-batcher (:mod:`.batcher`); Prometheus metrics include per-feature drift against the
training profile (:mod:`.drift`) and live accuracy from label feedback (:mod:`.feedback`).
"""
