"""Deterministic synthetic data: a Chongqing-like city for demos, tests and benchmarks."""

from sample_data.city import SampleCity, generate_city, read_files, write_files

__all__ = ["SampleCity", "generate_city", "read_files", "write_files"]
