"""Live analysis: follow a run while the camera is still writing (``sevi watch``; docs/live.md).

- :mod:`~sevi_lib.watch.sources`: the frames of a live run: a ``FinalImage`` file appended in SWMR
  mode (:class:`~sevi_lib.watch.sources.SwmrSource`) or a folder of numbered chunk files
  (:class:`~sevi_lib.watch.sources.ChunkFolder`).
- :mod:`~sevi_lib.watch.state`: the append-only, crash-safe state folder (segments = detection
  shards, manifest, refit history).
- :mod:`~sevi_lib.watch.live`: the loop (:class:`~sevi_lib.watch.live.Watcher`): detection as the
  frames land, refits warm-started from the last answer, status and projections, and the end of
  the run, which gives exactly what ``sevi accumulate`` and ``sevi fit`` give on the same frames.
- :mod:`~sevi_lib.watch.writer`: how a camera program writes a file that can be followed.

Pictures and the page are drawn by the report layer (:mod:`sevi_lib.report.live`) for ``sevi watch``.
"""
