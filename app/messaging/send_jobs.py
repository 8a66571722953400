"""The worker's arq queue and the send jobs put on it, by the scheduler pass
(tasks.engine) and by the API when a rep sends a message now (sendMessage).

A send job takes a block of message ids, sent as one batch; two jobs for one
message are harmless, since a message leaves QUEUED once, by compare-and-set.
"""

from __future__ import annotations

import logging

from arq import ArqRedis
from redis.asyncio import Redis

from app.clock import Clock

QUEUE = "leadline:queue"
SEND_BLOCK = 100
"""Messages per send job at most (sent a sending.CHUNK at a time, so a killed worker
leaves at most a chunk per running job UNCERTAIN): a job costs the worker some of arq's Redis
work and a read of the organizations, so fewer, larger jobs leave more CPU for the
messages."""
RECOVERY_EPOCH_SECONDS = 10
"""How long a send job's id stands for its messages. A job that a killed worker left
"in progress" before it claimed any of them (arq reruns it only after its timeout)
holds them this long at most: then the recovery gives them a new job. Messages that
wait this long behind a backlog get a second job, which finds them claimed or sent."""
logger = logging.getLogger("leadline.sending")


async def enqueue_sends(redis: ArqRedis, message_ids: list[int], clock: Clock) -> None:
    """One job per block of SEND_BLOCK consecutive message ids, with a job id made of
    the block, its first id and the RECOVERY_EPOCH: enqueuing the same messages again
    while their job waits or runs (the recovery of ``queued_messages`` finds messages
    still waiting for their jobs) is a no-op, and a block's ids queued by a later pass
    get a job of their own (with the block alone in the id they would be taken for a
    duplicate and wait for the recovery)."""
    epoch = int(clock.now().timestamp() // RECOVERY_EPOCH_SECONDS)
    blocks: dict[int, list[int]] = {}
    for message_id in sorted(message_ids):
        blocks.setdefault(message_id // SEND_BLOCK, []).append(message_id)
    for block, block_ids in blocks.items():
        job_id = f"send:{block}:{block_ids[0]}:{epoch}"
        await redis.enqueue_job("send_messages", block_ids, _job_id=job_id, _queue_name=QUEUE)


async def hand_over(redis: Redis | None, message_ids: list[int], clock: Clock) -> None:
    """Gives committed QUEUED messages to a worker at once (from a process that holds
    a plain Redis client: the API). Without Redis, or when it fails, the scheduler's
    recovery of QUEUED messages hands them over within its interval."""
    if redis is None or not message_ids:
        return
    try:
        await enqueue_sends(ArqRedis(connection_pool=redis.connection_pool), message_ids, clock)
    except Exception:  # Redis away: the recovery finds them
        logger.warning("could not hand %d message(s) to a worker; the scheduler will", len(message_ids), exc_info=True)
