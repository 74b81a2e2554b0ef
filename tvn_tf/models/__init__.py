"""Tiny Video Network models: architectures as data, Keras layers, the builder."""
