"""TF Serving: string-in SavedModel export, preflight, gRPC/REST clients, dev server.

Heavy imports (TensorFlow, grpcio) happen in the submodules, so importing the
client does not pull in the exporter.
"""
