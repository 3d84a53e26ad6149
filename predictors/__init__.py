"""Length predictors. `make_predictor(name, **params)` builds one by its CLI name.

Model-based predictors (proxy, llm-*) are registered through small factories that import their
modules on first use, so `import predictors` stays free of torch / transformers."""

from seqsched.predictors.base import Predictor, PredictorCost
from seqsched.predictors.basic import PREDICTORS as BASIC_PREDICTORS
from seqsched.predictors.from_file import ColumnPredictor, FromFilePredictor
from seqsched.predictors.quality import QualityPredictor
from seqsched.common.errors import UserError, did_you_mean


def _proxy(**params):
    from seqsched.predictors.proxy import ProxyPredictor

    return ProxyPredictor(**params)


def _llm_perception(**params):
    from seqsched.predictors.llm import make_perception

    return make_perception(**params)


def _llm_lora(**params):
    from seqsched.predictors.llm import make_lora

    return make_lora(**params)


PREDICTORS = {
    **BASIC_PREDICTORS,
    "from-file": FromFilePredictor,
    "column": ColumnPredictor,
    "quality": QualityPredictor,
    "proxy": _proxy,
    "llm-perception": _llm_perception,
    "llm-lora": _llm_lora,
}


def make_predictor(name: str, **params) -> Predictor:
    if name not in PREDICTORS:
        raise UserError(f"unknown predictor {name!r}{did_you_mean(name, PREDICTORS)}; choose one "
                        f"of {', '.join(PREDICTORS)}")
    try:
        return PREDICTORS[name](**params)
    except UserError:
        raise
    except TypeError as e:                       # an unknown parameter
        raise UserError(f"predictor {name}: bad parameter ({e}); see `seqsched predict --help`"
                        ) from None
    except ValueError as e:                      # a parameter value the predictor rejects
        raise UserError(f"predictor {name}: {e}") from None


__all__ = ["Predictor", "PredictorCost", "PREDICTORS", "make_predictor"]
