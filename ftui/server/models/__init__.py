"""Models: the base models (GGUF or a Hugging Face folder), the cache of loaded models and the generation, the
merged weights of a tuned model."""
