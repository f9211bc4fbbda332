"""Request and response bodies of the HTTP service (pydantic; unknown fields are refused)."""

from __future__ import annotations

from typing import Annotated, Any, Union

from .._optional import import_optional

# through import_optional: a direct import without the extra names the extra instead
# of failing with a bare ImportError
_pydantic = import_optional("pydantic", "serve")
BaseModel, ConfigDict, Field = _pydantic.BaseModel, _pydantic.ConfigDict, _pydantic.Field
StrictBool, StrictFloat, StrictInt, StrictStr = (
    _pydantic.StrictBool, _pydantic.StrictFloat, _pydantic.StrictInt, _pydantic.StrictStr)

__all__ = ["FeedbackItemIn", "FeedbackBatchIn", "FeedbackResult", "FeedbackOut", "PredictIn", "PredictionOut",
           "PredictOut", "MAX_ITEMS"]

#: items per feedback request and rows per predict request
MAX_ITEMS = 1000
Scalar = Union[StrictBool, StrictInt, StrictFloat, StrictStr, None]
Label = Union[StrictBool, StrictInt, StrictFloat, Annotated[str, Field(min_length=1, max_length=128)]]
Features = Annotated[dict[Annotated[str, Field(max_length=200)], Scalar], Field(max_length=10_000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeedbackItemIn(_Strict):
    """One feedback item: a label for a served prediction (``prediction_id``) or for ``features``."""

    user: Annotated[str, Field(min_length=1, max_length=128, description="the end user giving the feedback")]
    label: Label
    prediction_id: Annotated[str | None, Field(max_length=64)] = None
    features: Features | None = None
    item: Annotated[str | None, Field(max_length=128, description="the item's key, if the client has one")] = None
    id: Annotated[str | None, Field(max_length=128, description="client id: a retry with the same id is not stored twice")] = None


class FeedbackBatchIn(_Strict):
    items: Annotated[list[FeedbackItemIn], Field(min_length=1, max_length=MAX_ITEMS)]


class FeedbackResult(BaseModel):
    index: int
    feedback_id: int
    id: str | None
    status: str
    reason: str
    replayed: bool


class FeedbackOut(BaseModel):
    accepted: int
    quarantined: int
    results: list[FeedbackResult]


class PredictIn(_Strict):
    rows: Annotated[list[Features], Field(min_length=1, max_length=MAX_ITEMS)]


class PredictionOut(BaseModel):
    prediction_id: str
    label: Any
    confidence: float


class PredictOut(BaseModel):
    model_version: int
    predictions: list[PredictionOut]
