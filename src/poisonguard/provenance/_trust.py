"""Sources and their trust: a Beta prior per kind, updated by scan and verification evidence.

Risk model
----------
A source's *risk* is the probability that a row it supplies is poisoned. Its prior is
``Beta(a, b)`` by kind (``a`` pseudo-flagged rows out of ``a + b`` pseudo-rows):

================  ======  ======  ==========  ==========================================
kind              a       b       prior mean  why
================  ======  ======  ==========  ==========================================
internal          1       99      0.01        curated in-house, access-controlled
vendor            2       48      0.04        contractual, but outside our control
user-generated    4       36      0.10        anyone can submit; adversaries included
public-web        6       14      0.30        uncurated open web; the easiest to poison
================  ======  ======  ==========  ==========================================

Evidence: ``f`` rows flagged out of ``n`` scanned (summed over every scan attributed to
the source) and ``v`` failed verifications of its dataset versions. Each failed
verification counts as ``FAILED_VERIFICATION_WEIGHT`` (= 100) flagged pseudo-rows: data
that changed behind the ledger's back is strong evidence. The posterior is

    Beta(a + f + 100 v,  b + n - f)

and the reported risk is its mean, ``(a + f + 100 v) / (a + b + n + 100 v)``, with the
95 % upper credible bound beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from scipy.stats import beta as beta_dist

__all__ = ["KIND_PRIORS", "SOURCE_KINDS", "FAILED_VERIFICATION_WEIGHT", "TrustScore", "trust_score"]

KIND_PRIORS: dict[str, tuple[float, float]] = {
    "internal": (1.0, 99.0),
    "vendor": (2.0, 48.0),
    "user-generated": (4.0, 36.0),
    "public-web": (6.0, 14.0),
}
SOURCE_KINDS = tuple(KIND_PRIORS)
FAILED_VERIFICATION_WEIGHT = 100


@dataclass(frozen=True)
class TrustScore:
    """A source's prior, evidence and posterior risk."""

    kind: str
    prior_a: float
    prior_b: float
    flagged: int
    total: int
    failed_verifications: int
    post_a: float
    post_b: float

    @property
    def prior_risk(self) -> float:
        return self.prior_a / (self.prior_a + self.prior_b)

    @property
    def risk(self) -> float:
        """Posterior mean probability that a row from this source is poisoned."""
        return self.post_a / (self.post_a + self.post_b)

    @property
    def risk_upper(self) -> float:
        """95 % upper credible bound of the risk."""
        return float(beta_dist.ppf(0.95, self.post_a, self.post_b))

    @property
    def trust(self) -> float:
        return 1.0 - self.risk


def trust_score(kind: str, *, flagged: int = 0, total: int = 0, failed_verifications: int = 0) -> TrustScore:
    """The Beta posterior of a source of ``kind`` given its evidence."""
    from ..errors import InputError

    if kind not in KIND_PRIORS:
        raise InputError(f"unknown source kind {kind!r}; choose one of {', '.join(SOURCE_KINDS)}")
    if flagged < 0 or total < 0 or failed_verifications < 0 or flagged > total:
        raise InputError(f"invalid evidence: flagged={flagged}, total={total}, failed={failed_verifications}")
    a, b = KIND_PRIORS[kind]
    w = FAILED_VERIFICATION_WEIGHT * failed_verifications
    return TrustScore(kind=kind, prior_a=a, prior_b=b, flagged=flagged, total=total,
                      failed_verifications=failed_verifications,
                      post_a=a + flagged + w, post_b=b + (total - flagged))
