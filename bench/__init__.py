"""Benchmarks: memory bandwidth (the roofline), kernels, conversion; more to come."""
