"""Tiny Video Network models: architectures as data, Keras layers, the builder.

Backend-neutral (Keras 3 ops only, no TensorFlow import): the models build and run
on Keras' TensorFlow, JAX and PyTorch backends; see docs/backends.md. `flops` alone
needs TensorFlow.
"""
