"""Procedural face data: a face renderer (renderer.py), a blemish synthesiser (blemishes.py) and the writers
of data-set folders (writers.py, the `facezoo-synth` command). Everything is deterministic in (seed, index):
each sample draws its parameters from its own generator (sampling.py), so a face is the same whichever batch
it is made in."""
