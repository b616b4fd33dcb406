"""Worked examples (README, "Bring your own model"): `my_vae.py`, a plain PyTorch VAE."""
