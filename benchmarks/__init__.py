"""Benchmarks of the whole product: speed against the I/O ceiling, live latency, warm-up,
image quality and flicker, with baselines, written as JSON, markdown and PNG plots.

    realtime-unmask bench --quick        # about a minute and a half on a 2-core CPU
    realtime-unmask bench --out DIR      # the full run behind the README's performance table
"""
