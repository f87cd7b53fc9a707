"""Noise processes and samplers. See ``docs/diffusion.md`` for every formula."""
