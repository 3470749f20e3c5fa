"""Helpers for testing trtshim (and code built on it) on machines without TensorRT."""
