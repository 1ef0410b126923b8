"""The record keys of fednuclei's Flower messages, shared by the ClientApp and the strategies.

Instructions (server -> client) carry a ``ConfigRecord`` :data:`CONFIG` (the run config plus
``server-round``) and, for training and evaluation, the global weights: one ``ArrayRecord``
:data:`ARRAYS` (FedAvg, FedST, FedRGD, and every evaluation) or, for FedMix training, two
``ArrayRecord`` s :data:`FEDMIX_MODELS`. Replies carry a ``MetricRecord`` :data:`METRICS`, a
``ConfigRecord`` :data:`CLIENT` (``name``; ``supervision`` too, except in FedAvg replies) and,
after training, the updated weights under the keys they came in (left out by a mixed-supervision
client that did not train).
"""

CONFIG = "config"
ARRAYS = "arrays"
FEDMIX_MODELS = ("model_1", "model_2")
METRICS = "metrics"
CLIENT = "client"
# The MetricRecord key Flower's FedAvg weights by; the mixed-supervision methods send their
# usable images there too.
WEIGHT_KEY = "num-examples"
USABLE_KEY = "usable_images"
