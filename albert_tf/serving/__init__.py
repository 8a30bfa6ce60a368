"""TF Serving: string-in SavedModel export, preflight, gRPC/REST clients, dev server.

`export_classifier`, `preflight` and `ServingClient` are importable from here;
the exporter and the client load on first use, so importing the client does
not pull in the exporter.

Example:
```python
from albert_tf.serving import ServingClient, export_classifier, preflight

version_dir = export_classifier("runs/sst2/model.keras", "exports/albert")
print(preflight(version_dir).format())
ServingClient("localhost:8500", "albert").predict(["A warm, funny film."])
```
"""

import importlib

# Imported now: the function shares its module's name, and importing the
# module later would otherwise leave the module as this attribute.
from albert_tf.serving.preflight import preflight

_PUBLIC = {
    "ServingClient": "albert_tf.serving.client",
    "ServingError": "albert_tf.serving.client",
    "export_classifier": "albert_tf.serving.export",
}
__all__ = sorted([*_PUBLIC, "preflight"])


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'albert_tf.serving' has no attribute {name!r}")
