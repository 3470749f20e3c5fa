"""Whether an artifact file is trusted, judged on the opened archive: its member table, signature, pickles and manifest schema."""
