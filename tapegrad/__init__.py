"""The tapegrad application: the ``tapegrad`` command line, the training presets, the course
reports' experiments and the PyTorch twin they are compared against.

It sits on top of the libraries (``autodiff``, ``nn``, ``viz``); none of them imports it.
"""
