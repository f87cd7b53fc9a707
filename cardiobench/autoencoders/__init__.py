"""Autoencoders (plugin kind ``autoencoder``) and their training: the first stage of latent diffusion.

See ``docs/latent.md``. ``base.Autoencoder`` is the interface, ``vae.MaskVAE`` the built-in ``vae``,
``train`` the spec, store, training and report behind ``cardiobench autoencoder``.
"""
