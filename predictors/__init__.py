"""Length predictors. `make_predictor(name, **params)` builds one by its CLI name."""

from predictors.base import Predictor, PredictorCost
from predictors.basic import PREDICTORS


def make_predictor(name: str, **params) -> Predictor:
    if name not in PREDICTORS:
        raise ValueError(f"unknown predictor {name!r}; choose one of {', '.join(PREDICTORS)}")
    return PREDICTORS[name](**params)


__all__ = ["Predictor", "PredictorCost", "PREDICTORS", "make_predictor"]
