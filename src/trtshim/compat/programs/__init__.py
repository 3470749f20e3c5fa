"""Reading and building programs: exported programs, hybrid TensorRT graphs, custom ops, pytree types."""
