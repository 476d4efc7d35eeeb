"""The simulator process: every registered provider's simulator in one ASGI app (``app.py``),
plus the parts they share (fault rules, the image renderer)."""
