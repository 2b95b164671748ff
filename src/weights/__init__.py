"""facezoo.weights: everything about weight files, and nothing about training.

- `resolver`: where pretrained files are found (`resolve`, `KNOWN_WEIGHTS`, `facezoo-weights`);
- `state_dict`: the public toolkit (read with `weights_only=True`, pick / strip / sub-tree, match with a
  one-line mismatch listing);
- `networks`: the networks of a zoo module as loaders see them (parameters on the meta device, EMA pairs,
  held-out skeletons);
- one importer per method, the architecture read from keys and shapes: `stylegan2` (rosinality, GPEN
  training, BasicSR and clean layouts), `gpen`, `gfpgan`; `releases` recognises which one a file needs;
- `cli`: `facezoo-import FILE --out X.ckpt`.
"""
