"""Training: the dataset builder (numpy only) and the Keras diffusion model (TensorFlow, imported lazily)."""
