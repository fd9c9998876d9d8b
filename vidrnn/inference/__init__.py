"""Inference: what the CLI (and later the web page) call, with no logic of their own.

* :mod:`~vidrnn.inference.checkpoint` -- ``load_model`` (the ``nn.Module`` and its metadata,
  no Lightning) and ``load_task`` (the Lightning task, for evaluation)
* :mod:`~vidrnn.inference.predict` -- labelling videos: top-k, per-second timelines, attention overlays
* :mod:`~vidrnn.inference.forecast` -- forecasting pictures and per-lead-time metrics
* :mod:`~vidrnn.inference.features` -- feature extraction into a resumable, sharded cache
"""
