"""lsdm: semi-supervised conditional generation by Latent Space Distribution Matching.

Fit a latent space on all images, match the joint law of (condition, latent) with a W1 critic on
the few pairs, generate in one step. The stages of dvc.yaml live in `lsdm.pipeline`."""

__version__ = "0.1.0"
