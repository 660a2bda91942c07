"""Truth inference and agreement: integer-coded crowd labels in, posteriors and skills out.

NumPy/SciPy only; imports nothing else of Quorum (DESIGN section 5). Start from
:func:`encode_labels` (hashable columns to codes), fit an estimator from :data:`ESTIMATORS`
(or :class:`Auto`), read ``labels_``, ``probas_``, ``skills_``; see docs/truth.md.
"""

from quorum.truth.agreement import (
    Agreement,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
)
from quorum.truth.bradley_terry import BradleyTerry
from quorum.truth.calibration import (
    apply_temperature,
    calibration_error,
    expected_calibration_error,
    fit_temperature,
)
from quorum.truth.dawid_skene import DawidSkene, OneCoinDawidSkene, one_coin_confusions, posterior
from quorum.truth.encoding import EncodedLabels, encode, encode_labels
from quorum.truth.glad import GLAD
from quorum.truth.mace import MACE
from quorum.truth.majority import MajorityVote, Wawa, ZeroBasedSkill
from quorum.truth.registry import ESTIMATORS, METHODS, Auto, Estimator, make_estimator

__all__ = [
    "ESTIMATORS",
    "GLAD",
    "MACE",
    "METHODS",
    "Agreement",
    "Auto",
    "BradleyTerry",
    "DawidSkene",
    "EncodedLabels",
    "Estimator",
    "MajorityVote",
    "OneCoinDawidSkene",
    "Wawa",
    "ZeroBasedSkill",
    "apply_temperature",
    "cohen_kappa",
    "encode",
    "encode_labels",
    "calibration_error",
    "expected_calibration_error",
    "fit_temperature",
    "fleiss_kappa",
    "krippendorff_alpha",
    "make_estimator",
    "one_coin_confusions",
    "percent_agreement",
    "posterior",
]
