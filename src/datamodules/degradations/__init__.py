"""Batched, seeded synthetic degradation for blind face restoration: `pipeline.BlindDegradation` composes the
stages of one module per family (blur, resize, noise, jpeg, color) with the options of `config`.
The OpenCV per-image reference it is tested against is tests/reference_degradations.py."""
