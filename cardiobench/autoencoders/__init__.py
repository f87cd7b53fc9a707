"""Autoencoders (plugin kind ``autoencoder``) and their training: the first stage of latent diffusion.

See ``docs/latent.md``. ``base.Autoencoder`` is the interface, ``vae.MaskVAE`` the built-in ``vae`` (label maps),
``image_vae.ImageVAE`` the built-in ``image-vae`` (MR slices), ``train`` the spec, store, training and report behind
``cardiobench autoencoder``, ``runs`` what a latent run needs (the autoencoder of a configuration, its ceiling).
"""
