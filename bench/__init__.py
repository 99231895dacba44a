"""The product's measurements: throughput grid, roofline and bandwidth probe, fidelity, reports."""
