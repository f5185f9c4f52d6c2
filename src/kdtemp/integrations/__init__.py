"""Bridges to other training libraries (``hf_trainer``: Hugging Face ``Trainer``); importing this imports none of them."""
