"""``make chaos``: the fault run (``python -m bench.chaos``); see ``run.py`` and bench/README.md."""
