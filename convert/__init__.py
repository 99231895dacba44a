"""HF checkpoints to GGUF: streaming safetensors, architecture tables, vocab, quantizers."""
