"""RadLite Edge: a llama.cpp-native edge toolkit for small radiology language models."""

__version__ = "0.1.0"
