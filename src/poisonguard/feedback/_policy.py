"""Feedback settings and the per-user reputation score."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import ConfigError

__all__ = ["FeedbackPolicy", "Reputation", "reputation"]

_DAY = 86400.0


@dataclass(frozen=True)
class FeedbackPolicy:
    """Every threshold of feedback validation and campaign detection.

    Parameters
    ----------
    max_items_per_request : int
        Larger batches are refused whole (HTTP 413/422), never cut.
    user_rate_limit, user_rate_window_s : int, float
        Items one user may send per window; more are quarantined (``rate-limit``).
    token_rate_limit, token_rate_window_s : int, float
        Items one API token may send per window; more refuse the request (HTTP 429),
        so the client knows nothing was stored.
    min_reputation : float
        Users below it have every item quarantined.
    confident : float
        A served prediction with at least this probability is *confident* (the
        champion's calibrated threshold, when higher, replaces it; above 1 disables).
    override_reputation : float
        Only users at or above it may contradict a confident prediction without review.
    new_account_days : float
        Accounts younger than this count as *fresh* in campaign detection.
    campaign_* :
        The campaign presence test: time window, minimum distinct users, family-wise
        level (Bonferroni), minimum ratio of observed to expected change rate, floor of
        the expected rate, minimum share of fresh or low-reputation users, and the share
        of a user's pending items that must be the campaign's change for the user's items
        to be quarantined as a member.
    """

    max_items_per_request: int = 1000
    user_rate_limit: int = 200
    user_rate_window_s: float = 3600.0
    token_rate_limit: int = 1_000_000
    token_rate_window_s: float = 60.0
    min_reputation: float = 0.2
    confident: float = 0.95
    override_reputation: float = 0.6
    new_account_days: float = 7.0
    fresh_reputation: float = 0.5
    campaign_window_s: float = 86400.0
    campaign_min_users: int = 5
    campaign_alpha: float = 0.01
    campaign_min_ratio: float = 2.0
    campaign_base_floor: float = 0.02
    campaign_fresh_share: float = 0.5
    campaign_member_share: float = 0.5

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.confident <= 1.01:
            problems.append(f"confident={self.confident!r} (must lie in [0, 1.01]; above 1 disables the rule)")
        for name in ("min_reputation", "override_reputation", "fresh_reputation", "campaign_alpha",
                     "campaign_base_floor", "campaign_fresh_share", "campaign_member_share"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                problems.append(f"{name}={v!r} (must lie in [0, 1])")
        for name, v in asdict(self).items():
            if name.endswith(("_limit", "_s", "_request", "_users")) and v <= 0:
                problems.append(f"{name}={v!r} (must be > 0)")
        if problems:
            raise ConfigError("invalid feedback policy: " + "; ".join(problems))


@dataclass(frozen=True)
class Reputation:
    """A user's reputation in [0, 1] and its four parts.

    ``score = 0.4 trusted + 0.3 confident + 0.15 age + 0.15 volume``. The agreement
    parts are Laplace-smoothed shares (a new user starts at 0.5 on both), so one lucky
    or unlucky item does not decide; age and volume saturate at 30 days and 20 accepted
    items, so a new account starts at 0.35 and cannot override confident predictions
    until it has a record.
    """

    score: float
    trusted: float
    confident: float
    age: float
    volume: float


def reputation(*, trusted_n: int, trusted_agree: int, conf_n: int, conf_agree: int, n_accepted: int,
               age_s: float) -> Reputation:
    t = (trusted_agree + 1.0) / (trusted_n + 2.0)
    c = (conf_agree + 1.0) / (conf_n + 2.0)
    a = min(1.0, max(age_s, 0.0) / (30 * _DAY))
    v = min(1.0, n_accepted / 20.0)
    return Reputation(score=0.4 * t + 0.3 * c + 0.15 * a + 0.15 * v, trusted=t, confident=c, age=a, volume=v)
