"""Truth inference and agreement: integer-coded crowd labels in, posteriors and skills out.

NumPy/SciPy only; imports nothing else of Quorum (DESIGN section 5).
"""

from quorum.truth.dawid_skene import DawidSkene, OneCoinDawidSkene, one_coin_confusions, posterior
from quorum.truth.encoding import EncodedLabels, encode, encode_labels
from quorum.truth.majority import MajorityVote, Wawa, ZeroBasedSkill

__all__ = [
    "DawidSkene",
    "EncodedLabels",
    "MajorityVote",
    "OneCoinDawidSkene",
    "Wawa",
    "ZeroBasedSkill",
    "encode",
    "encode_labels",
    "one_coin_confusions",
    "posterior",
]
from quorum.truth.glad import GLAD

__all__ += ["GLAD"]
from quorum.truth.mace import MACE  # noqa: E402

__all__ += ["MACE"]
