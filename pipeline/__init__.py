"""Spam/ham SMS pipeline: Luigi tasks (``pipeline.tasks``) over pure modules."""
import os

# TensorFlow's C++ start-up chatter (CUDA probing on a CPU-only machine) hides real errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
