"""The engine: tierq's only door to NATS and JetStream.

Nothing else in tierq imports ``nats``; services use the names exported here.
"""

from ..config import ConnectOptions as ConnectOptions
from ..credentials import ROLES as ROLES
from ..credentials import NatsUser as NatsUser
from ..credentials import NatsUsers as NatsUsers
from ._cancel import raise_if_cancelled as raise_if_cancelled
from .auth import authorization_config as authorization_config
from .auth import leaf_config as leaf_config
from .codec import (
    DEFAULT_MAX_BYTES as DEFAULT_MAX_BYTES,
)
from .codec import (
    Codec as Codec,
)
from .codec import (
    encode_json as encode_json,
)
from .codec import (
    pack_array as pack_array,
)
from .commit import CommitterStatistics as CommitterStatistics
from .commit import GroupCommitter as GroupCommitter
from .connect import (
    Engine as Engine,
)
from .connect import (
    Message as Message,
)
from .connect import (
    Subscription as Subscription,
)
from .connect import (
    connect as connect,
)
from .embedded import (
    EmbeddedNats as EmbeddedNats,
)
from .embedded import (
    find_nats_server as find_nats_server,
)
from .embedded import (
    free_port as free_port,
)
from .events import ensure_events_stream as ensure_events_stream
from .intake import IntakeFollower as IntakeFollower
from .intake import IntakeStream as IntakeStream
from .kv import LeaderLease as LeaderLease
from .kv import SettingsStore as SettingsStore
from .log import MAX_BATCH_MSGS as MAX_BATCH_MSGS
from .log import EventLog as EventLog
from .log import LogReader as LogReader
from .provision import provision as provision
from .provision import replicas_for as replicas_for
from .snapshot import SnapshotStore as SnapshotStore
from .subjects import (
    MASTER_OPS as MASTER_OPS,
)
from .subjects import (
    REGION_OPS as REGION_OPS,
)
from .subjects import (
    Subjects as Subjects,
)
from .subjects import (
    validate_token as validate_token,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MASTER_OPS",
    "MAX_BATCH_MSGS",
    "REGION_OPS",
    "ROLES",
    "Codec",
    "CommitterStatistics",
    "ConnectOptions",
    "EmbeddedNats",
    "Engine",
    "EventLog",
    "GroupCommitter",
    "IntakeFollower",
    "IntakeStream",
    "LeaderLease",
    "LogReader",
    "Message",
    "NatsUser",
    "NatsUsers",
    "SettingsStore",
    "SnapshotStore",
    "Subjects",
    "Subscription",
    "authorization_config",
    "connect",
    "encode_json",
    "ensure_events_stream",
    "find_nats_server",
    "free_port",
    "leaf_config",
    "pack_array",
    "provision",
    "raise_if_cancelled",
    "replicas_for",
    "validate_token",
]
