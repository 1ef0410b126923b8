"""Tiles, readers for public datasets, the synthetic generator, weak labels, clients and patches."""
