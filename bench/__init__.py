"""visiongate benchmarks (``make bench``): every figure next to a baseline measured in the same run.

See bench/README.md. Nothing in here is imported by the product.
"""
