"""Federated training on Flower: settings, the ClientApp and ServerApp, a resumable FedAvg
strategy, and the simulation driver.

Modules stay import-light on purpose: a SuperNode imports ``client_app`` only.
"""
