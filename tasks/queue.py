"""The worker's arq queue and the send jobs put on it: app.messaging.send_jobs,
where the API can reach them too (it enqueues sendMessage's message at once)."""

from __future__ import annotations

from app.messaging.send_jobs import QUEUE, RECOVERY_EPOCH_SECONDS, SEND_BLOCK, enqueue_sends

__all__ = ["QUEUE", "RECOVERY_EPOCH_SECONDS", "SEND_BLOCK", "enqueue_sends"]
