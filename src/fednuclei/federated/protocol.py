"""The record keys of fednuclei's Flower messages, shared by the ClientApp and the strategy.

Instructions (server -> client) carry a ``ConfigRecord`` :data:`CONFIG` (the run settings and
``server-round``, see :mod:`fednuclei.federated.run_config`) and, for training and evaluation,
the main global model under :data:`ARRAYS`; training instructions also carry the method's extra
global models under their names (FedMix: ``model_2``) and, when the run has a FedProx strength,
the models it started from under :func:`reference_key` of each name. Replies carry a ``MetricRecord``
:data:`METRICS`, a ``ConfigRecord`` :data:`CLIENT` (``name``, ``supervision``) and, after
training, the updated weights under the keys they came in (left out by a client that did not
train).

Under ``secure_aggregation`` the training exchange is Flower's SecAgg+ instead
(:mod:`fednuclei.federated.secure_aggregation`); :data:`SECAGG_CLIPPING_RANGE` is the bound
both sides hold the weights to.
"""

CONFIG = "config"
ARRAYS = "arrays"
METRICS = "metrics"
CLIENT = "client"
# Training replies: the images a client trained on (0: it did not train, its weight is 0).
USABLE_KEY = "usable_images"
# Evaluation replies: validation tiles, the key Flower's FedAvg weights the mean Dice by.
WEIGHT_KEY = "num-examples"


def reference_key(model_key: str) -> str:
    """The key of a model's FedProx reference weights in a training instruction."""
    return f"{model_key}.reference"


# SecAgg+ clips each weight to +-this before quantising it; U-Net weights stay within a few units.
SECAGG_CLIPPING_RANGE = 8.0
