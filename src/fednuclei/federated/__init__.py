"""Federated training on Flower: settings, the ClientApp and ServerApp, resumable strategies
(FedAvg in ``strategy``, FedMix/FedST/FedRGD in ``strategies``), their client-side training
(``local_training``, on top of ``pseudo_labels``), and the simulation driver.

Modules stay import-light on purpose: a SuperNode imports ``client_app`` only.
"""
