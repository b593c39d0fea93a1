"""vaebench: which output distribution should an image VAE's decoder use?

Pipeline stages, one module or package each: data -> train -> evaluate -> aggregate -> figures -> report.
The output families live in one registry (`vaebench.families`).
"""

__version__ = "0.1.0"
