"""Central differential privacy, on Flower's building blocks.

With ``dp_noise_multiplier`` z > 0, Flower's ``DifferentialPrivacyServerSideFixedClipping``
wraps the method's strategy: each client's update (its weights minus the round's global ones)
is clipped to L2 norm ``dp_clipping_norm`` C, the strategy averages the updates with equal
weights, and Gaussian noise of standard deviation z * C / n (n clients) is added to the
average. Clipping on the server protects the released models, not the updates the server sees:
it assumes an honest server, as central DP does.

The privacy spent is Flower's RDP accountant's: one Gaussian release per round at noise
multiplier z, every client taking part (no amplification by sampling), neighbouring datasets
differing by one hospital's data. It is reported as epsilon at ``dp_delta``.

Which methods may train so is the method table's ``central_dp``.
"""

from __future__ import annotations

from flwr.serverapp import NeighboringRelation, PrivacyConfig, RdpAccountant, SamplingMethod
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, Strategy
from flwr.supercore.privacy_accounting import GaussianPrivacyEvent

from fednuclei.run_settings import RunSettings


def with_central_dp(strategy: Strategy, settings: RunSettings) -> Strategy:
    """``strategy`` wrapped in Flower's server-side fixed clipping and noise, when the settings
    ask for central DP; ``strategy`` itself otherwise."""
    if settings.dp_noise_multiplier <= 0:
        return strategy
    return DifferentialPrivacyServerSideFixedClipping(strategy, settings.dp_noise_multiplier,
                                                      settings.dp_clipping_norm, len(settings.clients))


def epsilon_spent(settings: RunSettings, rounds: int) -> float | None:
    """Epsilon at ``settings.dp_delta`` after ``rounds`` private rounds; None without central DP."""
    if settings.dp_noise_multiplier <= 0 or rounds < 1:
        return None
    clients = len(settings.clients)
    accountant = RdpAccountant(PrivacyConfig(target_delta=settings.dp_delta, population_size=clients,
                                             neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
                                             sampling_method=SamplingMethod.NO_AMPLIFICATION))
    accountant.compose(GaussianPrivacyEvent(settings.dp_noise_multiplier, clients, clients), count=rounds)
    return accountant.get_privacy_spent().epsilon
