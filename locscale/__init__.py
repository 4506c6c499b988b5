"""LocScale: model-based local amplitude scaling of cryo-EM maps.

Implements Jakobi, Wilmanns & Sachse, eLife 2017;6:e27131.
"""

__version__ = "0.1.0"
CITATION = (
    "Jakobi AJ, Wilmanns M, Sachse C (2017). Model-based local density sharpening of cryo-EM maps. "
    "eLife 6:e27131. doi:10.7554/eLife.27131"
)
