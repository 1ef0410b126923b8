"""Federated training on Flower: the ClientApp (``client_app``) and ServerApp (``server_app``), one
strategy for every federated method (``strategy``), which node plays which client
(``discovery``), the rounds' checkpoints (``checkpoint``), how long the server waits
(``pacing``), central differential privacy (``privacy``), secure aggregation
(``secure_aggregation``), progress lines (``progress``), what messages carry (``protocol``,
``run_config``) and the simulation driver (``simulation``).

Modules stay import-light on purpose: a SuperNode imports ``client_app`` only.
"""
