"""The embedding index of a folder: vectors per image content, kept up to date incrementally, with
nearest-neighbour search, duplicate groups and outlier ranking (no Qt, no torch; ADR 0150)."""
