"""Messages are read through their prospect's connection and `node`."""

from __future__ import annotations

from app.messaging import models
from schema.messaging.types import Message
from schema.node import NodeReader
from schema.prospects.queries import prospect_data

NODES: dict[str, NodeReader] = {"Message": prospect_data(models.Message, Message)}
