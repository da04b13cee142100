"""Worker autoscaling: the policy (``tierq.core.autoscale``) carried out by a provider.

``tierq autoscale --provider local --region eu myapp.tasks`` (and ``tierq dev --autoscale``)
runs :class:`Autoscaler` with the ``local`` provider: ``tierq worker`` processes on this host.
On Kubernetes, KEDA scales the workers' Deployment through the external scaler the API
serves (``tierq.api.keda``).
"""

from __future__ import annotations

from .local import LocalProvider as LocalProvider
from .service import AutoscaleConfig as AutoscaleConfig
from .service import Autoscaler as Autoscaler
from .service import run_autoscaler as run_autoscaler

__all__ = ["AutoscaleConfig", "Autoscaler", "LocalProvider", "run_autoscaler"]
