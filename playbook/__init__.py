"""specdecode-playbook: measure, then decide whether to turn on speculative decoding in vLLM."""

__version__ = "0.1.0"
