"""REST and gRPC interfaces over one service layer, with auth, live events and metrics.

``run_api(ApiConfig(...))`` serves both transports in one process; see ``docs/api.md``.
"""

from .config import ApiConfig as ApiConfig
from .server import ApiServer as ApiServer
from .server import run_api as run_api
from .service import ApiService as ApiService

__all__ = ["ApiConfig", "ApiServer", "ApiService", "run_api"]
