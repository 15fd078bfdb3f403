"""The candidates: a simple baseline and a gradient-boosted model, and how they are scored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.core.config import Config
from conveyor.stages.training._encoder import FeatureEncoder

if TYPE_CHECKING:
    import numpy as np

__all__ = ["fit", "make_baseline", "make_lightgbm", "score"]


def make_baseline(config: Config, encoder: FeatureEncoder) -> Any:
    """A linear model on median-imputed, scaled numerics and one-hot categoricals."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = list(range(len(encoder.numeric)))
    categorical = encoder.categorical_indices
    prep = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1),
                    OneHotEncoder(handle_unknown="ignore", min_frequency=5),
                ),
                categorical,
            ),
        ]
    )
    if config.schema.task == "regression":
        return make_pipeline(prep, Ridge(alpha=1.0))
    return make_pipeline(prep, LogisticRegression(max_iter=2000))


def make_lightgbm(config: Config) -> Any:
    import lightgbm as lgb

    params = config.training.lightgbm.model_dump()
    common = {
        "random_state": config.training.seed,
        "n_jobs": config.training.threads,
        "verbose": -1,
        # the same data, seed and threads give the same model, so the promotion gate compares like with like
        "deterministic": True,
        "force_col_wise": True,
    }
    if params["subsample"] < 1:
        common["subsample_freq"] = 1
    if config.schema.task == "regression":
        return lgb.LGBMRegressor(**params, **common)
    return lgb.LGBMClassifier(**params, **common)


def fit(estimator: Any, matrix: np.ndarray, y: np.ndarray, encoder: FeatureEncoder) -> Any:
    if type(estimator).__module__.startswith("lightgbm"):
        return estimator.fit(matrix, y, categorical_feature=encoder.categorical_indices or "auto")
    return estimator.fit(matrix, y)


def score(task: str, y_true: Any, outputs: dict[str, list[Any]], classes: list[Any] | None) -> dict[str, float]:
    """Test-set metrics from a model's outputs; the primary metric first."""
    import numpy as np
    from sklearn import metrics

    if task == "regression":
        pred = np.asarray(outputs["prediction"], dtype=float)
        truth = np.asarray(y_true, dtype=float)
        return {
            "r2": float(metrics.r2_score(truth, pred)),
            "rmse": float(np.sqrt(metrics.mean_squared_error(truth, pred))),
            "mae": float(metrics.mean_absolute_error(truth, pred)),
        }
    truth = list(y_true)
    labels = outputs["prediction"]
    result = {"accuracy": float(metrics.accuracy_score([str(v) for v in truth], [str(v) for v in labels]))}
    if classes is not None and len(classes) == 2:
        positive = [str(v) == str(classes[1]) for v in truth]
        if len(set(positive)) == 2:
            result = {"roc_auc": float(metrics.roc_auc_score(positive, outputs["probability"])), **result}
        result["f1"] = float(metrics.f1_score(positive, [str(v) == str(classes[1]) for v in labels]))
    return result
