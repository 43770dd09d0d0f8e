"""Events: one model for every service, recorded in the service's transaction (an outbox
that is also the audit store), relayed to Redis Streams, read with consumer groups.

```
model.py     Event {id, type, occurred_at, actor, org_id, target, ip, user_agent,
             request_id, data}, Actor, Target, EVENT_TYPES
table.py     EventRecordMixin: the per-service `events` table and its indexes
record.py    record_event(session, Model, type=..., actor=..., target=..., org_id=..., data=...)
relay.py     EventRelay: table -> XADD events:<service> MAXLEN ~ cap; retention purge;
             events_relayed_total, events_stream_lag_seconds
consumer.py  StreamConsumer: XREADGROUP, XACK after the handler, XAUTOCLAIM of stale entries
audit.py     AuditQuery: a filtered page of events, newest first
```

The stream contract (shared with the live socket): key `events:<service>`, one entry per
event, a single field `event` holding the event's JSON.
"""

from platform_common.events.audit import AuditFilter, EventRead, audit_page
from platform_common.events.consumer import StreamConsumer
from platform_common.events.model import EVENT_TYPES, Actor, Event, EventType, Target
from platform_common.events.record import record_event
from platform_common.events.relay import EventMetrics, EventRelay, stream_key
from platform_common.events.table import EventRecordMixin

__all__ = [
    "EVENT_TYPES",
    "Actor",
    "AuditFilter",
    "Event",
    "EventMetrics",
    "EventRead",
    "EventRecordMixin",
    "EventRelay",
    "EventType",
    "StreamConsumer",
    "Target",
    "audit_page",
    "record_event",
    "stream_key",
]
