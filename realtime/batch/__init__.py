"""``realtime-unmask batch``: many inputs at once, on local worker processes or on Ray.

    realtime-unmask batch archive/ more.mp4 list.txt --out unmasked/ --workers 2
    realtime-unmask batch archive/ --out /shared/unmasked --ray local
    realtime-unmask batch /shared/archive --out /shared/unmasked --ray head.cluster:6379

From Python::

    from realtime.batch.job import BatchConfig, run_batch
    result = run_batch(BatchConfig(inputs=("archive/",), out_dir=Path("unmasked")))

Modules: ``inputs`` (INPUT... -> tasks and output names), ``tasks`` (what travels between the
job and its workers), ``manifest`` (the JSON-lines record), ``worker`` (one input through
``realtime.loop``), ``local`` and ``ray_pool`` (the two pools), ``job`` (the dispatch loop),
``command`` (the command line).
"""
