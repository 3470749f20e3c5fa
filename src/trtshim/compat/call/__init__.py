"""What every call of a compiled module runs through: the module, its input contract, input specs and names."""
